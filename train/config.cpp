// The configuration table: one entry per key. Adding a key = a member in TrainConfig + one line here (and,
// for a new enumerated type, its spellings).
#include "train/config.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <set>
#include <sstream>
#include <utility>

#include "engine/devices.h"
#include "engine/error.h"

namespace scpn::train {

namespace {

using json = nlohmann::json;

struct Entry {
  std::string key;
  std::string type;
  std::string doc;
  std::function<void(TrainConfig&, const json&)> set;  // throws on a wrong type or value
  std::function<json(const TrainConfig&)> get;
};

template <class T> const char* type_name();
template <> const char* type_name<int64_t>() { return "integer"; }
template <> const char* type_name<uint64_t>() { return "integer >= 0"; }
template <> const char* type_name<double>() { return "number"; }
template <> const char* type_name<bool>() { return "boolean"; }
template <> const char* type_name<std::string>() { return "string"; }
template <> const char* type_name<std::vector<double>>() { return "list of numbers"; }
template <> const char* type_name<std::vector<int64_t>>() { return "list of integers"; }

template <class T>
bool has_type(const json& j) {
  if constexpr (std::is_same_v<T, int64_t>) return j.is_number_integer();
  if constexpr (std::is_same_v<T, uint64_t>) return j.is_number_unsigned() || (j.is_number_integer() && j.get<int64_t>() >= 0);
  if constexpr (std::is_same_v<T, double>) return j.is_number() && std::isfinite(j.get<double>());
  if constexpr (std::is_same_v<T, bool>) return j.is_boolean();
  if constexpr (std::is_same_v<T, std::string>) return j.is_string();
  if constexpr (std::is_same_v<T, std::vector<double>>) {
    if (!j.is_array()) return false;
    for (auto& e : j) if (!e.is_number()) return false;
    return true;
  }
  if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
    if (!j.is_array()) return false;
    for (auto& e : j) if (!e.is_number_integer()) return false;
    return true;
  }
  return false;
}

// The spelling of every value of an enumerated key, in the order error messages list them. The models'
// enums keep the spellings models/config.cpp gives them, so a config and a checkpoint's model config agree.
template <class E>
using Spellings = std::vector<std::pair<E, const char*>>;

template <class E>
Spellings<E> spelled_by_models(std::initializer_list<E> values) {
  Spellings<E> s;
  for (E v : values) s.emplace_back(v, models::to_string(v));
  return s;
}

template <class E> const Spellings<E>& spellings();
template <> const Spellings<Arch>& spellings() {
  static const Spellings<Arch> s = {{Arch::resnet18, "resnet18"}, {Arch::resnet34, "resnet34"}, {Arch::resnet50, "resnet50"}};
  return s;
}
template <> const Spellings<models::Stem>& spellings() {
  static const auto s = spelled_by_models({models::Stem::small, models::Stem::imagenet, models::Stem::imagenet_nopool});
  return s;
}
template <> const Spellings<models::Granularity>& spellings() {
  static const auto s = spelled_by_models({models::Granularity::weight, models::Granularity::channel});
  return s;
}
template <> const Spellings<DatasetKind>& spellings() {
  static const Spellings<DatasetKind> s = {{DatasetKind::fashion_mnist, "fashion_mnist"},
                                           {DatasetKind::image_folder, "image_folder"},
                                           {DatasetKind::inshop, "inshop"},
                                           {DatasetKind::gldv2, "gldv2"}};
  return s;
}
template <> const Spellings<data::BadImagePolicy>& spellings() {
  static const Spellings<data::BadImagePolicy> s = {{data::BadImagePolicy::fail, "fail"}, {data::BadImagePolicy::skip, "skip"}};
  return s;
}
template <> const Spellings<TrainMode>& spellings() {
  static const Spellings<TrainMode> s = {{TrainMode::scpn, "scpn"}, {TrainMode::sum, "sum"}, {TrainMode::parent, "parent"}};
  return s;
}
template <> const Spellings<models::BnStatsMode>& spellings() {
  static const Spellings<models::BnStatsMode> s = {{models::BnStatsMode::own, "own"}, {models::BnStatsMode::parent, "parent"}};
  return s;
}
template <> const Spellings<LrSchedule>& spellings() {
  static const Spellings<LrSchedule> s = {{LrSchedule::multistep, "multistep"}, {LrSchedule::cosine, "cosine"}};
  return s;
}
template <> const Spellings<ConflictSemantics>& spellings() {
  static const Spellings<ConflictSemantics> s = {{ConflictSemantics::last, "last"}, {ConflictSemantics::chain, "chain"}};
  return s;
}
template <> const Spellings<TaskWeighting>& spellings() {
  static const Spellings<TaskWeighting> s = {{TaskWeighting::cosine, "cosine"}, {TaskWeighting::none, "none"}};
  return s;
}
template <> const Spellings<IntegrationGranularity>& spellings() {
  static const Spellings<IntegrationGranularity> s = {{IntegrationGranularity::filter, "filter"},
                                                      {IntegrationGranularity::tensor, "tensor"}};
  return s;
}

template <> const Spellings<NonFinitePolicy>& spellings() {
  static const Spellings<NonFinitePolicy> s = {{NonFinitePolicy::stop, "stop"}, {NonFinitePolicy::skip, "skip"}};
  return s;
}

template <class E>
const char* spelling(E value) {
  for (auto& [v, name] : spellings<E>()) if (v == value) return name;
  throw Error("config: an enumerated value without a spelling");
}

// `ref(config)` is the key's member, for a const and for a mutable config alike; check(value) returns ""
// when the value is allowed, else what is wrong ("must be > 0").
template <class T, class Ref>
Entry field_at(std::string key, Ref ref, std::string doc, std::function<std::string(const T&)> check = {}) {
  Entry e;
  e.key = key;
  e.type = type_name<T>();
  e.doc = std::move(doc);
  e.set = [key, ref, check](TrainConfig& c, const json& j) {
    if (!has_type<T>(j)) throw Error(cat(key, ": expected a ", type_name<T>(), ", got ", j.dump()));
    T v = j.get<T>();
    if (check) {
      std::string problem = check(v);
      if (!problem.empty()) throw Error(cat(key, ": ", j.dump(), " ", problem));
    }
    ref(c) = v;
  };
  e.get = [ref](const TrainConfig& c) { return json(ref(c)); };
  return e;
}

template <class T>
Entry field(std::string key, T TrainConfig::*member, std::string doc, std::function<std::string(const T&)> check = {}) {
  return field_at<T>(std::move(key), [member](auto& c) -> auto& { return c.*member; }, std::move(doc), std::move(check));
}

// A key whose JSON value is one of the spellings of E; it is stored as the enum.
template <class E, class Ref>
Entry choice_at(std::string key, Ref ref, std::string doc) {
  Entry e;
  e.key = key;
  e.type = type_name<std::string>();
  e.doc = std::move(doc);
  e.set = [key, ref](TrainConfig& c, const json& j) {
    if (!j.is_string()) throw Error(cat(key, ": expected a ", type_name<std::string>(), ", got ", j.dump()));
    const std::string text = j.get<std::string>();
    std::string list;
    for (auto& [value, name] : spellings<E>()) {
      if (text == name) {
        ref(c) = value;
        return;
      }
      list += cat(list.empty() ? "" : ", ", name);
    }
    throw Error(cat(key, ": ", j.dump(), " is not one of ", list));
  };
  e.get = [ref](const TrainConfig& c) { return json(spelling<E>(ref(c))); };
  return e;
}

template <class E>
Entry choice(std::string key, E TrainConfig::*member, std::string doc) {
  return choice_at<E>(std::move(key), [member](auto& c) -> auto& { return c.*member; }, std::move(doc));
}

template <class T>
std::function<std::string(const T&)> at_least(T lo) {
  return [lo](const T& v) { return v >= lo ? std::string() : cat("must be >= ", lo); };
}
std::function<std::string(const double&)> in_range(double lo, double hi) {
  return [lo, hi](const double& v) { return v >= lo && v <= hi ? std::string() : cat("must be in [", lo, ", ", hi, "]"); };
}
std::function<std::string(const std::vector<double>&)> capacity_list(bool allow_one, bool allow_empty) {
  return [=](const std::vector<double>& v) {
    if (v.empty() && !allow_empty) return std::string("must list at least one capacity");
    std::set<double> seen;
    for (double c : v) {
      if (!(c > 0.0 && c <= 1.0)) return cat("contains capacity ", c, ", outside (0, 1]");
      if (c == 1.0 && !allow_one) return std::string("contains 1.0: the parent is always trained; list capacities below 1");
      if (!seen.insert(c).second) return cat("lists capacity ", c, " twice");
    }
    return std::string();
  };
}

const std::vector<Entry>& table() {
  static const std::vector<Entry> entries = {
      choice("model.arch", &TrainConfig::arch, "backbone: resnet18, resnet34 or resnet50"),
      choice("model.stem", &TrainConfig::stem,
             "stem: small (3x3/1, for 28-64 px), imagenet (7x7/2 + max-pool), imagenet_nopool (the paper's)"),
      field("model.base_width", &TrainConfig::base_width, "channels of the first stage (64 in the standard ResNets)",
            at_least<int64_t>(1)),
      field("model.feature_dim", &TrainConfig::feature_dim, "D, the retrieval feature (projector output)", at_least<int64_t>(1)),
      choice("model.granularity", &TrainConfig::granularity,
             "mask granularity: weight (one score per weight, the paper's) or channel (one per filter inside blocks)"),
      field("model.compact_subnets", &TrainConfig::compact_subnets,
            "channel granularity: train each subnetwork on compact copies of the filters it keeps, at its own cost "
            "(true), or masked at the parent's cost (false, the reference path); same gradients to rounding"),
      choice("data.dataset", &TrainConfig::dataset,
             "fashion_mnist (IDX .gz files in data.root), image_folder (data.root/{train,test}/<class>/*.jpg|png) or "
             "inshop (DeepFashion In-shop: list_eval_partition.txt's train split trains, its query split is ranked "
             "against its gallery split) or gldv2 (data.root/train.csv and data.root/x/y/z/<id>.jpg: the landmarks of "
             "data.held_out_classes are kept out of training, their images query each other)"),
      field("data.root", &TrainConfig::data_root, "where the dataset lives"),
      field("data.train_limit", &TrainConfig::train_limit, "fashion_mnist: use the first N training images (0 = all); image datasets always use all theirs", at_least<int64_t>(0)),
      field("data.test_limit", &TrainConfig::test_limit, "fashion_mnist: use the first N test images for evaluation (0 = all); image datasets always use all theirs",
            at_least<int64_t>(0)),
      field("data.held_out_classes", &TrainConfig::held_out_classes,
            "gldv2: fraction of the landmarks held out for the retrieval test (a fixed split; the rest train)",
            in_range(0.01, 0.99)),
      field("data.image_size", &TrainConfig::image_size, "side of the (square) network input in pixels", at_least<int64_t>(8)),
      field("data.augment", &TrainConfig::augment, "training augmentation (random crop with padding / resized crop, flip)"),
      field("data.workers", &TrainConfig::workers, "loader threads", at_least<int64_t>(1)),
      choice("data.bad_images", &TrainConfig::bad_images,
             "corrupt or missing image: fail (stop) or skip (count, up to data.max_skipped)"),
      field("data.max_skipped", &TrainConfig::max_skipped, "with data.bad_images=skip, stop after this many", at_least<int64_t>(0)),
      choice("train.mode", &TrainConfig::mode,
             "scpn (conflict-aware integration), sum (one backward of the summed losses, BCT-S), parent (dense only)"),
      field("train.capacities", &TrainConfig::capacities, "capacities trained with the parent, in step order",
            capacity_list(false, true)),
      field("train.extra_random_capacities", &TrainConfig::extra_random_capacities,
            "additional capacities drawn uniformly from (0.1, 1) each step (no BN statistics of their own)",
            at_least<int64_t>(0)),
      choice("train.bn_stats", &TrainConfig::bn_stats,
             "own: each trained capacity keeps its BN running statistics (ours); parent: the reference's behaviour"),
      field("train.epochs", &TrainConfig::epochs, "epochs over the training set", at_least<int64_t>(1)),
      field("train.steps", &TrainConfig::steps,
            "stop after N steps (0 = run all epochs); the cosine schedule still spans train.epochs, so --resume "
            "without it continues as if the run had not stopped",
            at_least<int64_t>(0)),
      field("train.batch_size", &TrainConfig::batch_size, "images per step", at_least<int64_t>(2)),
      field("train.lr", &TrainConfig::lr, "SGD learning rate", at_least<double>(0)),
      field("train.momentum", &TrainConfig::momentum, "SGD momentum", in_range(0, 1)),
      field("train.weight_decay", &TrainConfig::weight_decay,
            "weight decay on everything except the projector's and classifier's biases", at_least<double>(0)),
      choice("train.schedule", &TrainConfig::schedule,
             "multistep (×lr_gamma at milestones, per epoch) or cosine (per step)"),
      field("train.milestones", &TrainConfig::milestones, "multistep: epochs at which the lr is multiplied by lr_gamma"),
      field("train.lr_gamma", &TrainConfig::lr_gamma, "multistep factor", in_range(0, 1)),
      field("train.warmup_steps", &TrainConfig::warmup_steps, "cosine: linear warm-up steps", at_least<int64_t>(0)),
      field("train.task_clip_norm", &TrainConfig::task_clip_norm, "clip each subnetwork's gradients to this global norm",
            at_least<double>(0)),
      field("train.clip_norm", &TrainConfig::clip_norm, "clip the integrated gradients to this global norm", at_least<double>(0)),
      field("train.label_smoothing", &TrainConfig::label_smoothing, "cross-entropy label smoothing", in_range(0, 1)),
      field("train.concurrent_passes", &TrainConfig::concurrent_passes,
            "CPU: how many of a step's forward+backward passes (subnetworks, parent) run side by side, one thread "
            "each; 1 = one after another, each op on all threads; 0 = auto (the CPU thread count when it is 2 to "
            "the number of passes, else 1). Same results bit for bit; more activations alive at once",
            at_least<int64_t>(0)),
      field("train.seed", &TrainConfig::seed, "seed of every random stream (init, data order, augmentation, integration order)"),
      choice("train.non_finite", &TrainConfig::non_finite,
             "a step whose loss or gradients hold NaN or Inf: stop (end the run with an error naming the step) or "
             "skip (no update of parameters, optimizer state or BN statistics from it; the step still counts), "
             "at most train.max_skipped_steps times"),
      field("train.max_skipped_steps", &TrainConfig::max_skipped_steps,
            "with train.non_finite=skip, stop at the first skipped step beyond this many in the run",
            at_least<int64_t>(0)),
      choice_at<ConflictSemantics>(
          "integration.semantics", [](auto& c) -> auto& { return c.integration.semantics; },
          "last: project each g_i from the original, the last conflicting partner decides (reference); chain: PCGrad"),
      choice_at<TaskWeighting>("integration.weighting", [](auto& c) -> auto& { return c.integration.weighting; },
                               "cosine: ((1 + cos(h_i, g_i))/2)^gamma weights; none: equal"),
      field_at<double>("integration.gamma", [](auto& c) -> auto& { return c.integration.gamma; },
                       "exponent of the cosine weights", at_least<double>(0)),
      choice_at<IntegrationGranularity>("integration.granularity",
                                        [](auto& c) -> auto& { return c.integration.granularity; },
                                        "filter: rows of 4-D tensors are output filters; tensor: one row per tensor"),
      field_at<bool>("integration.fixed_order", [](auto& c) -> auto& { return c.integration.fixed_order; },
                     "use task order 0..K-1 instead of a seeded random order"),
      field("eval.capacities", &TrainConfig::eval_capacities,
            "capacities evaluated at the end (untrained ones get BN statistics re-estimated)", capacity_list(true, false)),
      field("eval.bn_reestimate_batches", &TrainConfig::bn_reestimate_batches,
            "training batches averaged to re-estimate BN statistics of an untrained capacity", at_least<int64_t>(1)),
      field("eval.in_memory_limit_mb", &TrainConfig::in_memory_limit_mb,
            "a test split (the test set, or In-shop's queries and gallery each) of up to this many MiB of f32 is "
            "decoded once and kept in host memory; a larger one is decoded again on every evaluation pass "
            "(0: always stream)",
            at_least<int64_t>(0)),
      field("eval.parent_bn", &TrainConfig::eval_parent_bn, "also evaluate subnetworks with the parent's BN statistics"),
      field("eval.recall_k", &TrainConfig::recall_k, "K values of Recall@K"),
      field("output.dir", &TrainConfig::output_dir, "run folder: config, metrics.jsonl, checkpoints, report"),
      field("output.log_every", &TrainConfig::log_every, "steps between metrics.jsonl lines", at_least<int64_t>(1)),
      field("output.checkpoint_every", &TrainConfig::checkpoint_every, "steps between checkpoints (0 = each epoch end)",
            at_least<int64_t>(0)),
      field("output.save_final", &TrainConfig::save_final, "save the final weights (final.safetensors)"),
      field("device", &TrainConfig::device, "auto (cuda:0 when a CUDA device is usable, else the CPU; cuda:LOCAL_RANK under a launcher), cpu or cuda:N"),
      field<std::string>("dist.backend", &TrainConfig::dist_backend, "auto (nccl for CUDA devices, tcp for the CPU), tcp or nccl",
                         [](const std::string& v) { return v == "auto" || v == "tcp" || v == "nccl" ? std::string() : std::string("is not one of auto, tcp, nccl"); }),
      field("dist.timeout_s", &TrainConfig::dist_timeout_s, "seconds a rank waits in a collective before the job ends naming the late rank", at_least<double>(0.1)),
      field("dist.sync_bn", &TrainConfig::dist_sync_bn, "batch statistics over every rank's shard (synchronised BN: N ranks compute what one process would); false: each rank's own, running statistics averaged after each step"),
      field("dist.bucket_mb", &TrainConfig::dist_bucket_mb, "gradients are averaged in collectives of at most this many MiB", at_least<int64_t>(1)),
      field("debug.detect_non_finite", &TrainConfig::detect_non_finite,
            "check every op's output in the forward and backward passes and stop at the first NaN or Inf, naming "
            "the op (slow: each output is copied to the host)"),
      field("debug.inject_nan_step", &TrainConfig::inject_nan_step,
            "make the first pixel of this step's batch NaN (1-based step; 0 = never), to try train.non_finite",
            at_least<int64_t>(0)),
      field("debug.sample_log", &TrainConfig::sample_log,
            "write output.dir/samples.jsonl: each step's dataset indices, to check that every sample is seen once "
            "per epoch across interruptions"),
      field("debug.checkpoint_pause_ms", &TrainConfig::checkpoint_pause_ms,
            "pause this long inside each write of last.safetensors (temporary file written, not yet renamed), so "
            "that a test can interrupt the write",
            at_least<int64_t>(0)),
  };
  return entries;
}

// {"train": {"lr": 0.1}} → {"train.lr": 0.1}; arrays and scalars are leaves.
void flatten(const json& j, const std::string& prefix, json& out) {
  if (j.is_object()) {
    for (auto& [k, v] : j.items()) flatten(v, prefix.empty() ? k : prefix + "." + k, out);
  } else {
    out[prefix] = j;
  }
}

const Entry* find_entry(const std::string& key) {
  for (auto& e : table()) if (e.key == key) return &e;
  return nullptr;
}

void check_consistency(const TrainConfig& c) {
  for (size_t i = 1; i < c.milestones.size(); ++i)
    SCPN_CHECK(c.milestones[i] > c.milestones[i - 1], "train.milestones: must be strictly increasing");
  for (int64_t k : c.recall_k) SCPN_CHECK(k >= 1, "eval.recall_k: ", k, " must be >= 1");
  check_device_name(c.device, "device");
  if (c.mode == TrainMode::parent)
    SCPN_CHECK(c.extra_random_capacities == 0, "train.extra_random_capacities: only for modes scpn and sum");
}

}  // namespace

TrainConfig config_from_json(const json& input, const std::string& source) {
  json flat = json::object();
  flatten(input, "", flat);
  TrainConfig c;
  for (auto& [key, value] : flat.items()) {
    const Entry* e = find_entry(key);
    if (!e) throw Error(cat(source, ": unknown key '", key, "' (docs/config.md lists every key)"));
    try {
      e->set(c, value);
    } catch (const Error& err) {
      throw Error(cat(source, ": ", err.what()));
    }
  }
  try {
    check_consistency(c);
  } catch (const Error& err) {
    throw Error(cat(source, ": ", err.what()));
  }
  return c;
}

namespace {

// A parser callback that refuses nesting deeper than kMaxConfigDepth as soon as the parser reaches it.
json::parser_callback_t depth_limit(const std::string& source) {
  return [source](int depth, json::parse_event_t event, json&) {
    if ((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) &&
        depth >= kMaxConfigDepth)
      throw Error(cat(source, ": nested deeper than the limit of ", kMaxConfigDepth, " levels"));
    return true;
  };
}

// Config values end up in config.json and checkpoint headers, JSON text that must be UTF-8; an argument
// that is not would otherwise fail far from the command line, in whatever first prints it.
bool is_utf8(const std::string& text) {
  try {
    (void)json(text).dump();
    return true;
  } catch (const json::type_error&) {
    return false;
  }
}

}  // namespace

TrainConfig parse_config(const std::string& config_file, const std::vector<std::string>& overrides) {
  json merged = json::object();
  if (!config_file.empty()) {
    std::ifstream in(config_file);
    if (!in) throw Error(cat(config_file, ": cannot open the config file"));
    json file;
    try {
      file = json::parse(in, depth_limit(config_file));
    } catch (const json::exception& e) {  // parse_error, or out_of_range for a number like 1e999
      throw Error(cat(config_file, ": not valid JSON (", e.what(), ")"));
    }
    if (!file.is_object()) throw Error(cat(config_file, ": the config must be a JSON object"));
    // Check the file on its own first so its errors name the file.
    config_from_json(file, config_file);
    flatten(file, "", merged);
  }
  for (const std::string& kv : overrides) {
    if (!is_utf8(kv))
      throw Error(cat("argument ", json(kv).dump(-1, ' ', false, json::error_handler_t::replace), ": not valid UTF-8"));
    // Quoted as JSON: a control character (a NUL would cut the message short) shows as an escape.
    if (std::any_of(kv.begin(), kv.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }))
      throw Error(cat("argument ", json(kv).dump(), ": contains a control character"));
    size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) throw Error(cat("argument '", kv, "': expected KEY=VALUE"));
    std::string key = kv.substr(0, eq), text = kv.substr(eq + 1);
    json value = json::parse(text, depth_limit(cat("argument '", key, "'")), false);
    if (value.is_discarded()) value = text;  // a bare word is a string
    merged[key] = value;
  }
  return config_from_json(merged, overrides.empty() ? (config_file.empty() ? "defaults" : config_file) : "command line");
}

const char* to_string(Arch v) { return spelling(v); }
const char* to_string(DatasetKind v) { return spelling(v); }
const char* to_string(LrSchedule v) { return spelling(v); }
const char* to_string(TrainMode v) { return spelling(v); }

json TrainConfig::to_json() const {
  json j = json::object();
  for (auto& e : table()) j[e.key] = e.get(*this);
  return j;
}

std::string config_reference_markdown() {
  std::ostringstream os;
  TrainConfig defaults;
  os << "# train_scpn configuration keys\n\n"
     << "Generated by `train_scpn --config-doc` from `train/config.cpp`; a test keeps this file current.\n"
     << "Keys are given in a JSON file (nested `{\"train\": {\"lr\": 0.05}}` or flat `{\"train.lr\": 0.05}`) with\n"
     << "`--config FILE`, or on the command line as `KEY=VALUE` (`train.lr=0.05`, `train.capacities=[0.5,0.25]`).\n"
     << "Unknown keys, wrong types and out-of-range values are rejected before any work, naming the key.\n\n"
     << "| key | type | default | meaning |\n| --- | --- | --- | --- |\n";
  for (auto& e : table()) os << "| `" << e.key << "` | " << e.type << " | `" << e.get(defaults).dump() << "` | " << e.doc << " |\n";
  return os.str();
}

}  // namespace scpn::train
