// The run folder's checkpoints (see checkpointer.h): what a training checkpoint holds besides the model,
// and the config check that decides whether a run may resume from one.
#include "train/checkpointer.h"

#include <filesystem>
#include <map>

#include "engine/error.h"
#include "engine/safetensors.h"
#include "models/checkpoint.h"
#include "train/atomic_write.h"

namespace scpn::train {

namespace {

using json = nlohmann::json;

// Keys that may differ between a run and its resumption (they change how long or how loudly it runs, not
// what it computes).
bool may_change_on_resume(const std::string& key) {
  return key == "train.steps" || key == "train.epochs" || key == "data.workers" || key.rfind("output.", 0) == 0 ||
         key.rfind("eval.", 0) == 0 || key == "device" || key == "dist.backend" || key == "dist.timeout_s" ||
         key == "dist.bucket_mb";
}

}  // namespace

std::string last_checkpoint_path(const TrainConfig& config) { return config.output_dir + "/last.safetensors"; }

Checkpointer::Checkpointer(const TrainConfig& config, models::ResNet& model, Optimizer& optimizer,
                           LrScheduler& scheduler)
    : config_(config), model_(model), optimizer_(optimizer), scheduler_(scheduler) {}

void Checkpointer::write_config() const {
  write_text_atomic(config_.output_dir + "/config.json", config_.to_json().dump(2) + "\n");
}

void Checkpointer::save_last(const TrainPosition& p) const {
  std::vector<NamedTensor> tensors;
  for (auto& [name, t] : model_.state()) tensors.push_back({name, t});
  for (auto& [name, t] : optimizer_.state_tensors()) tensors.push_back({"optimizer/" + name, t});
  SafetensorsMetadata meta;
  meta["format"] = models::kCheckpointFormat;
  meta["format_version"] = models::kCheckpointFormatVersion;
  meta["model_config"] = models::checkpoint_config(model_).to_json().dump();
  meta["train_config"] = config_.to_json().dump();
  meta["optimizer"] = optimizer_.state_meta().dump();
  meta["scheduler"] = scheduler_.state().dump();
  meta["position"] = json{{"step", p.step}, {"epoch", p.epoch}, {"batch", p.batch}, {"best_accuracy", p.best_accuracy},
                          {"world_size", world_size_}}.dump();
  save_safetensors(last_checkpoint_path(config_), tensors, meta);
}

void Checkpointer::save_best(const std::string& metric, double value) const {
  models::save_model(config_.output_dir + "/best.safetensors", model_, {{metric, std::to_string(value)}});
}

void Checkpointer::save_final() const { models::save_model(config_.output_dir + "/final.safetensors", model_); }

TrainPosition Checkpointer::resume() const {
  const std::string path = last_checkpoint_path(config_);
  SCPN_CHECK(std::filesystem::exists(path), "--resume: no checkpoint at ", path);
  SafetensorsFile file = read_safetensors(path);
  auto meta = [&](const char* key) -> json {
    auto it = file.metadata.find(key);
    SCPN_CHECK(it != file.metadata.end(), path, ": not a training checkpoint (no '", key, "' metadata)");
    return json::parse(it->second);
  };
  json saved = meta("train_config"), now = config_.to_json();
  // A key newer than the checkpoint had its default value in that run.
  const json defaults = TrainConfig().to_json();
  for (auto& [key, value] : now.items()) {
    const json was = saved.contains(key) ? saved.at(key) : defaults.value(key, json());
    if (!may_change_on_resume(key) && was != value)
      throw Error(cat(path, ": cannot resume: ", key, " was ", was.dump(), " in the run, now ", value.dump()));
  }
  const json pos = meta("position");
  const int saved_world = pos.value("world_size", 1);
  SCPN_CHECK(saved_world == world_size_, path, ": cannot resume: the run had ", saved_world, " rank",
             saved_world == 1 ? "" : "s", ", this one has ", world_size_, "; resume with ", saved_world,
             " process", saved_world == 1 ? "" : "es", " (each rank's share of the batch depends on it)");
  std::map<std::string, Tensor> targets;
  for (auto& [name, t] : model_.state()) targets[name] = t;
  NamedTensors optim_tensors;
  for (auto& [name, t] : file.tensors)
    if (name.rfind("optimizer/", 0) == 0) optim_tensors.emplace_back(name.substr(10), t);
  LoadIntoOptions lo;
  lo.allow_extra = true;
  load_into(file, targets, lo);
  optimizer_.load_state(meta("optimizer"), optim_tensors);
  scheduler_.load_state(meta("scheduler"));
  TrainPosition p;
  p.step = pos.at("step");
  p.epoch = pos.at("epoch");
  p.batch = pos.at("batch");
  p.best_accuracy = pos.at("best_accuracy");
  return p;
}

}  // namespace scpn::train
