// The run folder's checkpoints (see checkpointer.h): what a training checkpoint holds besides the model,
// and the config check that decides whether a run may resume from one.
#include "train/checkpointer.h"

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <thread>

#include "engine/error.h"
#include "engine/safetensors.h"
#include "models/checkpoint.h"
#include "train/atomic_write.h"
#include "train/non_finite.h"

namespace scpn::train {

namespace {

using json = nlohmann::json;

// Keys that may differ between a run and its resumption (they change how long or how loudly it runs, not
// what it computes; the non-finite policy only what happens once a step went non-finite).
bool may_change_on_resume(const std::string& key) {
  return key == "train.steps" || key == "train.epochs" || key == "data.workers" || key.rfind("output.", 0) == 0 ||
         key.rfind("eval.", 0) == 0 || key == "device" || key == "dist.backend" || key == "dist.timeout_s" ||
         key == "dist.bucket_mb" || key == "train.non_finite" ||
         key == "train.max_skipped_steps" || key.rfind("debug.", 0) == 0;
}

// debug.checkpoint_pause_ms: a pause inside the write (the temporary file complete, not yet renamed), so
// that a test can kill the process there.
std::function<void(const std::string&)> pause_inside_write(int64_t ms) {
  if (ms <= 0) return {};
  return [ms](const std::string&) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); };
}

// What is on disk instead of a checkpoint that could not be written.
std::string previous_checkpoint(const std::string& path) {
  if (!std::filesystem::exists(path)) return cat("there is no previous checkpoint at ", path);
  std::string step;
  try {
    const SafetensorsMetadata meta = read_safetensors_header(path).metadata;
    if (auto it = meta.find("position"); it != meta.end()) step = cat(" (step ", json::parse(it->second).at("step"), ")");
  } catch (const std::exception&) {
    // The step is only a courtesy: the file itself was not touched.
  }
  return cat("the previous checkpoint ", path, step, " is kept");
}

// Checks, then writes through `write`; every failure names what was not written and what remains.
void write_checked(const std::string& what, const std::string& path, const std::vector<NamedTensor>& tensors,
                   const std::function<void()>& write) {
  std::vector<std::pair<std::string, Tensor>> named;
  for (const NamedTensor& t : tensors) named.emplace_back(t.name, t.tensor);
  const std::string bad = describe_non_finite_tensors(named);
  if (!bad.empty())
    throw Error(cat(what, " not written: ", path, ": ", bad, "; ", previous_checkpoint(path)));
  try {
    write();
  } catch (const std::exception& e) {
    throw Error(cat(what, " not written: ", e.what(), "; ", previous_checkpoint(path)));
  }
}

std::vector<NamedTensor> model_tensors(const models::ResNet& model) {
  std::vector<NamedTensor> tensors;
  for (auto& [name, t] : model.state()) tensors.push_back({name, t});
  return tensors;
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
  std::vector<NamedTensor> tensors = model_tensors(model_);
  for (auto& [name, t] : optimizer_.state_tensors()) tensors.push_back({"optimizer/" + name, t});
  SafetensorsMetadata meta;
  meta["format"] = models::kCheckpointFormat;
  meta["format_version"] = models::kCheckpointFormatVersion;
  meta["model_config"] = models::checkpoint_config(model_).to_json().dump();
  meta["train_config"] = config_.to_json().dump();
  meta["optimizer"] = optimizer_.state_meta().dump();
  meta["scheduler"] = scheduler_.state().dump();
  meta["position"] = json{{"step", p.step}, {"epoch", p.epoch}, {"batch", p.batch}, {"best_accuracy", p.best_accuracy},
                          {"world_size", world_size_}, {"skipped_steps", p.skipped_steps},
                          {"epoch_loss_sum", p.epoch_loss_sum}, {"epoch_loss_steps", p.epoch_loss_steps}}.dump();
  const std::string path = last_checkpoint_path(config_);
  write_checked(cat("checkpoint of step ", p.step), path, tensors, [&] {
    save_safetensors(path, tensors, meta, pause_inside_write(config_.checkpoint_pause_ms));
  });
}

void Checkpointer::save_best(const std::string& metric, double value) const {
  const std::string path = config_.output_dir + "/best.safetensors";
  write_checked("best checkpoint", path, model_tensors(model_),
                [&] { models::save_model(path, model_, {{metric, std::to_string(value)}}); });
}

void Checkpointer::save_final() const {
  const std::string path = config_.output_dir + "/final.safetensors";
  write_checked("final checkpoint", path, model_tensors(model_), [&] { models::save_model(path, model_); });
}

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
  // Absent from older checkpoints: no skipped steps then, and a resumed epoch's mean counts its later steps.
  p.skipped_steps = pos.value("skipped_steps", int64_t(0));
  p.epoch_loss_sum = pos.value("epoch_loss_sum", 0.0);
  p.epoch_loss_steps = pos.value("epoch_loss_steps", int64_t(0));
  return p;
}

}  // namespace scpn::train
