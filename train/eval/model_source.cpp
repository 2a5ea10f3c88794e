// Resolving and checking the tools' inputs (see model_source.h).
#include "train/eval/model_source.h"

#include <filesystem>
#include <sstream>

#include "engine/safetensors.h"
#include "models/checkpoint.h"

namespace scpn::train {

namespace fs = std::filesystem;

ModelSource resolve_model_source(const std::string& run_dir, const std::string& checkpoint, const std::string& config_file) {
  SCPN_CHECK(!run_dir.empty() || !checkpoint.empty(),
             "no model given: pass --run DIR (a train_scpn run folder), or --checkpoint CKPT with --config CONFIG.json");
  ModelSource s;
  if (!run_dir.empty()) SCPN_CHECK(fs::is_directory(run_dir), "--run ", run_dir, ": no such folder");
  if (!checkpoint.empty()) {
    SCPN_CHECK(fs::is_regular_file(checkpoint), "--checkpoint ", checkpoint, ": no such file");
    s.checkpoint = checkpoint;
  } else {
    s.checkpoint = (fs::path(run_dir) / "final.safetensors").string();
    SCPN_CHECK(fs::is_regular_file(s.checkpoint), "--run ", run_dir,
               ": no final.safetensors (the run has not finished; pass --checkpoint ", run_dir,
               "/last.safetensors to use its latest checkpoint)");
  }
  if (!config_file.empty()) {
    SCPN_CHECK(fs::is_regular_file(config_file), "--config ", config_file, ": no such file");
    s.config_file = config_file;
  } else {
    SCPN_CHECK(!run_dir.empty(), "--checkpoint needs --config CONFIG.json (the run's config.json: it names the dataset ",
               "and the image size), or --run DIR");
    s.config_file = (fs::path(run_dir) / "config.json").string();
    SCPN_CHECK(fs::is_regular_file(s.config_file), "--run ", run_dir, ": no config.json");
  }
  s.config = parse_config(s.config_file, {});
  return s;
}

std::string pruned_capacity(const std::string& checkpoint) {
  SafetensorsHeader header = read_safetensors_header(checkpoint);
  auto it = header.metadata.find(kPrunedCapacityKey);
  return it == header.metadata.end() ? std::string() : it->second;
}

std::unique_ptr<models::ResNet> load_source_model(const ModelSource& source, bool accept_pruned) {
  const std::string pruned = pruned_capacity(source.checkpoint);
  if (!pruned.empty() && !accept_pruned)
    throw Error(cat(source.checkpoint, " is already a pruned subnetwork (capacity ", pruned,
                    "); prune or evaluate the full model it was cut from"));
  std::unique_ptr<models::ResNet> model = models::load_model(source.checkpoint);
  const models::ResNetConfig& m = model->config();
  SCPN_CHECK(m.inner_widths.empty() || !pruned.empty(), source.checkpoint,
             " is a compact subnetwork (model config inner_widths is set); prune or evaluate the full model it was cut from");
  const TrainConfig& c = source.config;
  auto mismatch = [&](const char* key, const std::string& in_checkpoint, const std::string& in_config) {
    if (in_checkpoint != in_config)
      throw Error(cat(source.checkpoint, " does not match ", source.config_file, ": ", key, " is ", in_checkpoint,
                      " in the checkpoint, ", in_config, " in the config"));
  };
  mismatch("model.arch", m.arch, to_string(c.arch));
  mismatch("model.stem", models::to_string(m.stem), models::to_string(c.stem));
  mismatch("model.base_width", std::to_string(m.base_width), std::to_string(c.base_width));
  mismatch("model.feature_dim", std::to_string(m.feature_dim), std::to_string(c.feature_dim));
  mismatch("model.granularity", models::to_string(m.granularity), models::to_string(c.granularity));
  int64_t channels = c.dataset == DatasetKind::fashion_mnist ? 1 : 3;
  SCPN_CHECK(m.in_channels == channels, source.checkpoint, " does not match ", source.config_file, ": the model takes ",
             m.in_channels, "-channel images, data.dataset ", to_string(c.dataset), " has ", channels);
  return model;
}

void check_model_classes(const models::ResNet& model, const ModelSource& source, const ExperimentData& data) {
  SCPN_CHECK(model.config().num_classes == data.train_set->num_classes(), source.checkpoint, " does not match ",
             source.config_file, ": the model has ", model.config().num_classes, " classes, the dataset at ",
             source.config.data_root, " has ", data.train_set->num_classes());
}

OpenedData open_data(const ModelSource& source, const models::ResNet& model, bool load_test_set, bool required,
                     ProgressConsole* console) {
  OpenedData out;
  try {
    out.data = std::make_unique<ExperimentData>(source.config);
  } catch (const Error& e) {
    if (required) throw;
    out.error = e.what();
    return out;
  }
  check_model_classes(model, source, *out.data);
  if (load_test_set) out.data->load_test_set(console);
  return out;
}

std::vector<double> capacities_with_own_stats(const models::ResNet& model) {
  return models::checkpoint_config(model).bn_capacities;
}

std::vector<double> trained_capacities(const TrainConfig& config) {
  return config.mode == TrainMode::parent ? std::vector<double>{} : config.capacities;
}

std::function<Tensor(int64_t)> restarting_reestimation_batches(const ExperimentData& data) {
  auto current = std::make_shared<std::function<Tensor(int64_t)>>();
  return [&data, current](int64_t index) {
    if (index == 0 || !*current) *current = data.reestimation_batches();
    return (*current)(index);
  };
}

std::vector<double> parse_capacity_list(const std::string& option, const std::string& text) {
  std::vector<double> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    size_t b = item.find_first_not_of(' '), e = item.find_last_not_of(' ');
    item = b == std::string::npos ? "" : item.substr(b, e - b + 1);
    char* end = nullptr;
    double v = std::strtod(item.c_str(), &end);
    SCPN_CHECK(!item.empty() && end == item.c_str() + item.size(), option, ": '", item, "' is not a number (expected ",
               "a comma-separated list such as 0.1,0.35,1)");
    models::check_capacity(option.c_str(), v);
    out.push_back(v);
  }
  SCPN_CHECK(!out.empty(), option, ": no capacities given");
  return out;
}

}  // namespace scpn::train
