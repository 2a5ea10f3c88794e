// The train_scpn job: setup from the config, the training loop with logging and checkpoints, resume,
// and the final evaluation.
#include "train/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "engine/autograd.h"
#include "engine/devices.h"
#include "engine/optim/schedule.h"
#include "engine/optim/sgd.h"
#include "engine/safetensors.h"
#include "models/checkpoint.h"
#include "train/data/loader.h"
#include "train/atomic_write.h"
#include "train/eval/model_source.h"
#include "train/experiment_data.h"
#include "train/scpn/step.h"

namespace scpn::train {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

namespace {


std::string format_duration(double seconds) {
  int64_t s = int64_t(std::max(0.0, seconds) + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
  else
    std::snprintf(buf, sizeof buf, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
  return buf;
}

// Keys that may differ between a run and its resumption (they change how long or how loudly it runs, not
// what it computes).
bool may_change_on_resume(const std::string& key) {
  return key == "train.steps" || key == "train.epochs" || key == "data.workers" || key.rfind("output.", 0) == 0 ||
         key.rfind("eval.", 0) == 0 || key == "device";
}

}  // namespace

struct Trainer::State {
  TrainConfig cfg;
  TrainerOptions opt;
  std::unique_ptr<ExperimentData> data;
  std::unique_ptr<data::Loader> loader;
  std::unique_ptr<models::ResNet> model;
  std::unique_ptr<SGD> optimizer;
  std::unique_ptr<LrScheduler> scheduler;
  std::unique_ptr<ScpnStep> step;
  int64_t steps_per_epoch = 0, total_steps = 0;
  int64_t global_step = 0, epoch = 0, batch = 0;  // the next step's position
  double best_accuracy = -1;
  std::ofstream metrics;
  bool tty = false;
  Device device;  // where the model, its optimizer state and each batch live; data stays on the host

  void setup_model();
  void save_training_checkpoint(const std::string& path);
  void resume_from(const std::string& path);
  // The number an epoch is judged by (best.safetensors keeps the best): the parent's test accuracy on one
  // set, its query-to-gallery Recall@1 on a query/gallery split (whose items are not training classes).
  std::pair<std::string, double> epoch_metric();
};




void Trainer::State::setup_model() {
  models::ResNetConfig mc = models::ResNetConfig::named(cfg.arch);
  mc.stem = models::parse_stem(cfg.stem);
  mc.in_channels = data->channels;
  mc.base_width = cfg.base_width;
  mc.feature_dim = cfg.feature_dim;
  mc.num_classes = data->train_set->num_classes();
  mc.granularity = models::parse_granularity(cfg.granularity);
  if (cfg.bn_stats == "own" && cfg.mode != "parent") mc.bn_capacities = cfg.capacities;
  Generator init(cfg.seed);
  model = std::make_unique<models::ResNet>(mc, init);
  if (!opt.init_checkpoint.empty()) {
    // A training checkpoint also holds the optimizer's tensors (ignored); a model checkpoint (e.g. a
    // pruned one) may lack per-capacity BatchNorm statistics: they start from the loaded parent's.
    SafetensorsFile file = read_safetensors(opt.init_checkpoint);
    std::map<std::string, Tensor> targets;
    std::vector<std::pair<Tensor, std::string>> seeded;  // (per-capacity buffer, its parent buffer)
    for (auto& [name, t] : model->state()) {
      size_t at = name.find('@');
      if (at != std::string::npos && !file.find(name)) seeded.emplace_back(t, name.substr(0, at));
      else targets[name] = t;
    }
    LoadIntoOptions lo;
    lo.allow_extra = true;
    load_into(file, targets, lo);
    for (auto& [buffer, parent] : seeded) buffer.copy_(targets.at(parent));
  }
  // Before the optimizer and the step: they keep handles to the parameter tensors, which Module::to
  // replaces. Initialising on the host and moving gives every device the same starting weights.
  model->to(device);

  SgdOptions decay{.momentum = cfg.momentum, .weight_decay = cfg.weight_decay};
  SgdOptions no_decay{.momentum = cfg.momentum, .weight_decay = 0};
  optimizer = std::make_unique<SGD>(
      std::vector<SgdGroup>{{model->decay_parameters(), decay, 1.0}, {model->no_decay_parameters(), no_decay, 1.0}}, cfg.lr);
  if (cfg.schedule == "multistep") {
    scheduler = std::make_unique<LrScheduler>(*optimizer, MultiStepOptions{cfg.lr, cfg.milestones, cfg.lr_gamma});
  } else {
    CosineWithWarmupOptions c;
    c.base_lr = cfg.lr;
    c.warmup_steps = std::min(cfg.warmup_steps, total_steps);
    c.total_steps = std::max<int64_t>(total_steps, 1);
    scheduler = std::make_unique<LrScheduler>(*optimizer, c);
  }

  StepOptions so;
  so.mode = cfg.mode == "scpn" ? TrainMode::scpn : cfg.mode == "sum" ? TrainMode::sum : TrainMode::parent;
  so.capacities = cfg.mode == "parent" ? std::vector<double>{} : cfg.capacities;
  so.extra_random_capacities = cfg.extra_random_capacities;
  so.bn_stats = cfg.bn_stats == "own" ? models::BnStatsMode::own : models::BnStatsMode::parent;
  so.task_clip_norm = cfg.task_clip_norm;
  so.clip_norm = cfg.clip_norm;
  so.label_smoothing = cfg.label_smoothing;
  so.integration.semantics = cfg.integration == "last" ? ConflictSemantics::last : ConflictSemantics::chain;
  so.integration.weighting = cfg.weighting == "cosine" ? TaskWeighting::cosine : TaskWeighting::none;
  so.integration.gamma = cfg.integration_gamma;
  so.integration.granularity =
      cfg.integration_granularity == "filter" ? IntegrationGranularity::filter : IntegrationGranularity::tensor;
  so.integration.fixed_order = cfg.fixed_order;
  step = std::make_unique<ScpnStep>(*model, *optimizer, so, cfg.seed);
}

void Trainer::State::save_training_checkpoint(const std::string& path) {
  std::vector<NamedTensor> tensors;
  for (auto& [name, t] : model->state()) tensors.push_back({name, t});
  for (auto& [name, t] : optimizer->state_tensors()) tensors.push_back({"optimizer/" + name, t});
  SafetensorsMetadata meta;
  meta["format"] = models::kCheckpointFormat;
  meta["format_version"] = models::kCheckpointFormatVersion;
  meta["model_config"] = models::checkpoint_config(*model).to_json().dump();
  meta["train_config"] = cfg.to_json().dump();
  meta["optimizer"] = optimizer->state_meta().dump();
  meta["scheduler"] = scheduler->state().dump();
  meta["position"] = json{{"step", global_step}, {"epoch", epoch}, {"batch", batch}, {"best_accuracy", best_accuracy}}.dump();
  save_safetensors(path, tensors, meta);
}

void Trainer::State::resume_from(const std::string& path) {
  SafetensorsFile file = read_safetensors(path);
  auto meta = [&](const char* key) -> json {
    auto it = file.metadata.find(key);
    SCPN_CHECK(it != file.metadata.end(), path, ": not a training checkpoint (no '", key, "' metadata)");
    return json::parse(it->second);
  };
  json saved = meta("train_config"), now = cfg.to_json();
  // A key newer than the checkpoint had its default value in that run.
  const json defaults = TrainConfig().to_json();
  for (auto& [key, value] : now.items()) {
    const json was = saved.contains(key) ? saved.at(key) : defaults.value(key, json());
    if (!may_change_on_resume(key) && was != value)
      throw Error(cat(path, ": cannot resume: ", key, " was ", was.dump(), " in the run, now ", value.dump()));
  }
  std::map<std::string, Tensor> targets;
  for (auto& [name, t] : model->state()) targets[name] = t;
  NamedTensors optim_tensors;
  for (auto& [name, t] : file.tensors)
    if (name.rfind("optimizer/", 0) == 0) optim_tensors.emplace_back(name.substr(10), t);
  LoadIntoOptions lo;
  lo.allow_extra = true;
  load_into(file, targets, lo);
  optimizer->load_state(meta("optimizer"), optim_tensors);
  scheduler->load_state(meta("scheduler"));
  json pos = meta("position");
  global_step = pos.at("step");
  epoch = pos.at("epoch");
  batch = pos.at("batch");
  best_accuracy = pos.at("best_accuracy");
}

std::pair<std::string, double> Trainer::State::epoch_metric() {
  model->eval();
  const SetEmbedding e = embed_set(*model, data->test, {1.0}, 256);
  model->train();
  if (data->test.has_accuracy()) return {"parent_test_accuracy", set_accuracy(data->test, e)};
  RetrievalOptions ropt;
  ropt.recall_k = {1};
  return {"parent_test_recall@1", retrieve(data->test, e, e, ropt).recall[0]};
}


Trainer::Trainer(TrainConfig config, TrainerOptions options) : s_(std::make_unique<State>()) {
  s_->cfg = std::move(config);
  s_->opt = std::move(options);
  s_->device = resolve_device(s_->cfg.device, "device");
  s_->tty = !s_->opt.quiet && ::isatty(STDERR_FILENO);
  s_->data = std::make_unique<ExperimentData>(s_->cfg);
  s_->loader = std::make_unique<data::Loader>(s_->data->train_set, s_->data->train_transforms,
                                              s_->data->loader_options(true, true));
  s_->steps_per_epoch = s_->loader->batches_per_epoch();
  s_->total_steps = s_->cfg.epochs * s_->steps_per_epoch;
  if (s_->cfg.steps > 0) s_->total_steps = std::min(s_->total_steps, s_->cfg.steps);
  s_->setup_model();
  fs::create_directories(s_->cfg.output_dir);
  if (s_->opt.resume) {
    std::string last = last_checkpoint_path(s_->cfg);
    SCPN_CHECK(fs::exists(last), "--resume: no checkpoint at ", last);
    s_->resume_from(last);
  }
  s_->data->load_test_set();
}

Trainer::~Trainer() = default;

const models::ResNet& Trainer::model() const { return *s_->model; }

std::string last_checkpoint_path(const TrainConfig& config) { return config.output_dir + "/last.safetensors"; }

TrainSummary Trainer::run() {
  State& s = *s_;
  const TrainConfig& cfg = s.cfg;
  write_text_atomic(cfg.output_dir + "/config.json", cfg.to_json().dump(2) + "\n");
  s.metrics.open(cfg.output_dir + "/metrics.jsonl", s.opt.resume ? std::ios::app : std::ios::trunc);
  SCPN_CHECK(s.metrics.good(), cfg.output_dir, "/metrics.jsonl: cannot open for writing");

  TrainSummary summary;
  auto t_start = Clock::now();
  int64_t first_step = s.global_step;
  double last_loss = 0;
  if (!s.opt.quiet)
    std::fprintf(stderr, "train_scpn: %s %s, %lld parameters, %lld training images, %lld steps (%lld per epoch), mode %s, on %s\n",
                 cfg.arch.c_str(), cfg.granularity.c_str(), (long long)s.model->parameter_count(),
                 (long long)s.data->train_set->size(), (long long)s.total_steps, (long long)s.steps_per_epoch, cfg.mode.c_str(),
                 s.device.str().c_str());

  while (s.global_step < s.total_steps && s.epoch < cfg.epochs) {
    s.model->train();
    s.loader->start_epoch(s.epoch, s.batch);
    double epoch_loss = 0;
    int64_t epoch_batches = 0;
    while (s.global_step < s.total_steps) {
      std::optional<data::Batch> b = s.loader->next();
      if (!b) break;
      StepResult r = s.step->run(b->images.to(s.device), b->labels.to(s.device), s.global_step);
      ++s.global_step;
      ++s.batch;
      last_loss = r.parent_loss;
      epoch_loss += r.parent_loss;
      ++epoch_batches;
      if (cfg.schedule == "cosine") s.scheduler->step();

      double elapsed = std::chrono::duration<double>(Clock::now() - t_start).count();
      double rate = double(s.global_step - first_step) * double(cfg.batch_size) / std::max(elapsed, 1e-9);
      double eta = double(s.total_steps - s.global_step) * double(cfg.batch_size) / std::max(rate, 1e-9);
      if (s.global_step % cfg.log_every == 0 || s.global_step == s.total_steps) {
        json line{{"step", s.global_step}, {"epoch", s.epoch}, {"lr", s.optimizer->lr()}, {"parent_loss", r.parent_loss},
                  {"capacities", r.capacities}, {"subnet_losses", r.subnet_losses}, {"grad_norm", r.grad_norm},
                  {"images_per_s", rate}, {"step_ms", r.timings.total_ms}};
        if (r.task_rows > 0) line["projected_fraction"] = double(r.projected_rows) / double(r.task_rows);
        s.metrics << line.dump() << "\n" << std::flush;
      }
      if (!s.opt.quiet && (s.tty || s.global_step % cfg.log_every == 0 || s.global_step == s.total_steps)) {
        std::string subnets;
        for (double l : r.subnet_losses) subnets += cat(subnets.empty() ? "" : " ", int(l * 1000) / 1000.0);
        std::fprintf(stderr, "%sstep %lld/%lld  epoch %lld  loss %.4f%s%s%s  %.1f img/s  ETA %s%s", s.tty ? "\r\033[K" : "",
                     (long long)s.global_step, (long long)s.total_steps, (long long)s.epoch, r.parent_loss,
                     subnets.empty() ? "" : " (subnets ", subnets.c_str(), subnets.empty() ? "" : ")", rate,
                     format_duration(eta).c_str(), s.tty ? "" : "\n");
      }
      if (cfg.checkpoint_every > 0 && s.global_step % cfg.checkpoint_every == 0)
        s.save_training_checkpoint(last_checkpoint_path(cfg));
    }
    bool epoch_done = s.batch >= s.steps_per_epoch;
    if (epoch_done) {
      const auto [metric, acc] = s.epoch_metric();
      json line{{"epoch", s.epoch}, {"mean_parent_loss", epoch_loss / double(std::max<int64_t>(epoch_batches, 1))},
                {metric, acc}};
      s.metrics << line.dump() << "\n" << std::flush;
      if (s.tty) std::fprintf(stderr, "\n");
      if (!s.opt.quiet) std::fprintf(stderr, "epoch %lld: %s %.4f\n", (long long)s.epoch, metric.c_str(), acc);
      ++s.epoch;
      s.batch = 0;
      if (cfg.schedule == "multistep") s.scheduler->step();
      if (acc > s.best_accuracy) {
        s.best_accuracy = acc;
        models::save_model(cfg.output_dir + "/best.safetensors", *s.model, {{metric, std::to_string(acc)}});
      }
    }
    s.save_training_checkpoint(last_checkpoint_path(cfg));
    if (!epoch_done) break;  // stopped by train.steps
  }
  if (s.tty) std::fprintf(stderr, "\n");
  summary.steps = s.global_step;
  summary.final_parent_loss = last_loss;
  if (cfg.save_final) models::save_model(cfg.output_dir + "/final.safetensors", *s.model);

  if (s.opt.evaluate) {
    EvalOptions eo;
    eo.capacities = cfg.eval_capacities;
    if (cfg.mode != "parent" && cfg.bn_stats == "own") eo.trained_capacities = cfg.capacities;
    eo.bn_reestimate_batches = cfg.bn_reestimate_batches;
    eo.parent_bn_too = cfg.eval_parent_bn;
    eo.recall_k = cfg.recall_k;
    // Each re-estimated capacity averages training batches 0..N-1, as the eval and prune tools do, so
    // report.json and `eval --run` agree.
    summary.report = evaluate_model(*s.model, s.data->test, eo, restarting_reestimation_batches(*s.data));
    json report = summary.report.to_json();
    report["steps"] = s.global_step;
    report["config"] = cfg.to_json();
    write_text_atomic(cfg.output_dir + "/report.json", report.dump(2) + "\n");
    write_text_atomic(cfg.output_dir + "/report.txt", summary.report.table());
    if (!s.opt.quiet) std::printf("%s", summary.report.table().c_str());
  }
  summary.seconds = std::chrono::duration<double>(Clock::now() - t_start).count();
  if (!s.opt.quiet) std::fprintf(stderr, "train_scpn: done in %s; results in %s\n", format_duration(summary.seconds).c_str(), cfg.output_dir.c_str());
  return summary;
}

}  // namespace scpn::train
