// Subnetwork extraction: builds the extracted model from the source's config, then fills every tensor
// by name from the source — gathered rows/columns for a channel-pruned compact model, M ⊙ W for a
// weight-pruned one — with the BatchNorm statistics of the chosen capacity.
#include "models/extract.h"

#include <cstring>

#include "engine/autograd.h"
#include "engine/ops/elementwise.h"

namespace scpn::models {

namespace {

// Indices of the non-zero entries of a 1-D 0/1 mask.
std::vector<int64_t> nonzero_indices(const Tensor& mask) {
  std::vector<double> v = mask.to_vector();
  std::vector<int64_t> out;
  for (size_t i = 0; i < v.size(); ++i)
    if (v[i] != 0.0) out.push_back(int64_t(i));
  return out;
}

// Copies t[rows][cols][...] into a new CPU tensor of the same dtype: rows index dim 0, cols dim 1 (a
// null pointer keeps the whole dimension; cols must be null for a 1-D tensor). Byte copies, so any dtype.
Tensor gather_rows_cols(const Tensor& t, const std::vector<int64_t>* rows, const std::vector<int64_t>* cols) {
  Tensor host = t.detach().to(kCPU);
  const int64_t a = host.size(0);
  const int64_t b = host.dim() >= 2 ? host.size(1) : 1;
  const int64_t inner = a * b == 0 ? 0 : host.numel() / (a * b);
  std::vector<int64_t> all_rows, all_cols;
  if (!rows) {
    for (int64_t i = 0; i < a; ++i) all_rows.push_back(i);
    rows = &all_rows;
  }
  if (!cols) {
    for (int64_t j = 0; j < b; ++j) all_cols.push_back(j);
    cols = &all_cols;
  }
  Shape shape = host.shape();
  shape[0] = int64_t(rows->size());
  if (host.dim() >= 2) shape[1] = int64_t(cols->size());
  Tensor out = Tensor::empty(shape, host.dtype(), kCPU);
  const size_t chunk = size_t(inner) * dtype_size(host.dtype());
  const auto* src = static_cast<const unsigned char*>(host.raw_data());
  auto* dst = static_cast<unsigned char*>(out.raw_data());
  for (int64_t r : *rows)
    for (int64_t c : *cols) {
      std::memcpy(dst, src + size_t(r * b + c) * chunk, chunk);
      dst += chunk;
    }
  return out;
}

// A fresh model of `config` in the source's dtype; every tensor is overwritten afterwards.
std::unique_ptr<ResNet> build_like(const ResNet& source, const ResNetConfig& config) {
  Generator gen(0);
  DType dtype = source.convs().front().second->weight().dtype();
  return std::make_unique<ResNet>(config, gen, dtype);
}

// Copies γ, β and the statistics selected for (capacity, mode) of every BatchNorm into `dst`'s BatchNorm
// of the same name, keeping only `kept` channels where the normalised conv was channel-pruned.
void copy_batch_norms(const ResNet& source, ResNet& dst, double capacity, BnStatsMode mode,
                      const std::map<std::string, std::vector<int64_t>>& kept) {
  std::map<std::string, Tensor> dst_state;
  for (auto& [name, t] : dst.state()) dst_state[name] = t;
  for (auto& [name, bn] : source.batch_norms()) {
    auto [mean, var] = bn->running_stats(capacity, mode);  // throws when c has no statistics
    auto it = kept.find(normalised_conv(name));
    const std::vector<int64_t>* rows = it == kept.end() ? nullptr : &it->second;
    dst_state.at(name + ".weight").copy_(gather_rows_cols(bn->weight(), rows, nullptr));
    dst_state.at(name + ".bias").copy_(gather_rows_cols(bn->bias(), rows, nullptr));
    dst_state.at(name + ".running_mean").copy_(gather_rows_cols(mean, rows, nullptr));
    dst_state.at(name + ".running_var").copy_(gather_rows_cols(var, rows, nullptr));
  }
}

// Projector and classifier: unchanged.
void copy_head(const ResNet& source, ResNet& dst) {
  auto src_params = source.projector().named_parameters(), dst_params = dst.projector().named_parameters();
  for (size_t i = 0; i < src_params.size(); ++i) dst_params[i].second.copy_(src_params[i].second.detach());
  src_params = source.classifier().named_parameters(), dst_params = dst.classifier().named_parameters();
  for (size_t i = 0; i < src_params.size(); ++i) dst_params[i].second.copy_(src_params[i].second.detach());
}

Tensor to_u8(const Tensor& mask) { return mask.detach().to(DType::u8); }

}  // namespace

std::string feeding_conv(const std::string& conv_name) {
  if (conv_name.rfind("layer", 0) != 0) return "";
  auto dot = conv_name.rfind('.');
  std::string prefix = conv_name.substr(0, dot + 1), last = conv_name.substr(dot + 1);
  if (last == "conv2") return prefix + "conv1";
  if (last == "conv3") return prefix + "conv2";
  return "";
}

std::string normalised_conv(const std::string& bn_name) {
  auto dot = bn_name.rfind('.');
  std::string prefix = dot == std::string::npos ? "" : bn_name.substr(0, dot + 1);
  std::string last = bn_name.substr(prefix.size());
  if (last.rfind("bn", 0) == 0) return prefix + "conv" + last.substr(2);
  if (last == "1" && prefix.size() >= 11 && prefix.compare(prefix.size() - 11, 11, "downsample.") == 0)
    return prefix + "0";
  return "";
}

std::map<std::string, std::vector<int64_t>> kept_filters(const ResNet& model, double capacity) {
  check_capacity("kept_filters", capacity);
  std::map<std::string, std::vector<int64_t>> kept;
  for (auto& [name, conv] : model.convs())
    if (conv->pruned() && conv->granularity() == Granularity::channel)
      kept[name] = nonzero_indices(conv->mask(capacity));
  return kept;
}

ExtractedModel extract_subnetwork(const ResNet& source, double capacity, BnStatsMode bn_stats) {
  check_capacity("extract_subnetwork", capacity);
  const ResNetConfig& src_config = source.config();
  SCPN_CHECK(src_config.inner_widths.empty(),
             "extract_subnetwork: the model is already a compact subnetwork (config.inner_widths is set); "
             "extract from the full model it was cut from");
  // Fail on missing statistics before building anything.
  for (auto& [name, bn] : source.batch_norms()) bn->running_stats(capacity, bn_stats);

  NoGradGuard no_grad;
  const Device device = source.convs().front().second->weight().device();
  ExtractedModel out;
  ResNetConfig config = src_config;
  config.bn_capacities.clear();
  std::map<std::string, std::vector<int64_t>> kept;

  if (src_config.granularity == Granularity::channel) {
    kept = kept_filters(source, capacity);
    for (auto& [name, rows] : kept) config.inner_widths[name] = int64_t(rows.size());
    out.model = build_like(source, config);
    std::map<std::string, Tensor> dst_state;
    for (auto& [name, t] : out.model->state()) dst_state[name] = t;
    for (auto& [name, conv] : source.convs()) {
      auto row_it = kept.find(name), col_it = kept.find(feeding_conv(name));
      const std::vector<int64_t>* rows = row_it == kept.end() ? nullptr : &row_it->second;
      const std::vector<int64_t>* cols = col_it == kept.end() ? nullptr : &col_it->second;
      dst_state.at(name + ".weight").copy_(gather_rows_cols(conv->weight(), rows, cols));
      if (rows) {
        Tensor m = zeros({conv->out_channels()}, DType::u8);
        for (int64_t r : *rows) m.data<uint8_t>()[r] = 1;
        out.masks.emplace_back(name + ".mask", m.to(device));
      }
    }
  } else {
    out.model = build_like(source, config);
    std::map<std::string, Tensor> dst_state;
    for (auto& [name, t] : out.model->state()) dst_state[name] = t;
    for (auto& [name, conv] : source.convs()) {
      Tensor w = conv->weight().detach();
      if (conv->pruned()) {
        Tensor m = conv->mask(capacity);
        dst_state.at(name + ".weight").copy_(mul(w, m));
        dst_state.at(name + ".score").copy_(conv->score().detach());
        out.masks.emplace_back(name + ".mask", to_u8(m));
      } else {
        dst_state.at(name + ".weight").copy_(w);
      }
    }
  }
  copy_batch_norms(source, *out.model, capacity, bn_stats, kept);
  copy_head(source, *out.model);
  out.model->to(device);
  out.model->train(source.is_training());
  return out;
}

}  // namespace scpn::models
