// The train_scpn job: setup from the config, the training loop and the final evaluation. What the run
// reports as it goes is train/run_log, what it keeps on disk train/checkpointer.
#include "train/trainer.h"

#include <chrono>
#include <filesystem>

#include "engine/devices.h"
#include "engine/optim/schedule.h"
#include "engine/optim/sgd.h"
#include "engine/safetensors.h"
#include "train/atomic_write.h"
#include "train/checkpointer.h"
#include "train/data/loader.h"
#include "train/eval/model_source.h"
#include "train/experiment_data.h"
#include "train/run_log.h"
#include "train/scpn/step.h"

namespace scpn::train {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

json PhaseSeconds::to_json() const {
  return {{"test_set_decoding", test_set_decoding},
          {"training", training},
          {"epoch_evaluations", epoch_evaluations},
          {"final_evaluation", final_evaluation}};
}

struct Trainer::State {
  TrainConfig cfg;
  TrainerOptions opt;
  std::unique_ptr<ExperimentData> data;
  std::unique_ptr<data::Loader> loader;
  std::unique_ptr<models::ResNet> model;
  std::unique_ptr<SGD> optimizer;
  std::unique_ptr<LrScheduler> scheduler;
  std::unique_ptr<ScpnStep> step;
  std::unique_ptr<Checkpointer> checkpointer;
  int64_t steps_per_epoch = 0, total_steps = 0;
  TrainPosition pos;
  Device device;  // where the model, its optimizer state and each batch live; data stays on the host
  std::unique_ptr<ProgressConsole> console;
  PhaseSeconds phase_seconds;

  void setup_model();
  // The number an epoch is judged by (best.safetensors keeps the best): the parent's test accuracy on one
  // set, its query-to-gallery Recall@1 on a query/gallery split (whose items are not training classes).
  std::pair<std::string, double> epoch_metric(int64_t epoch);
  EvalReport evaluate(RunLog& log);
};

void Trainer::State::setup_model() {
  models::ResNetConfig mc = models::ResNetConfig::named(to_string(cfg.arch));
  mc.stem = cfg.stem;
  mc.in_channels = data->channels;
  mc.base_width = cfg.base_width;
  mc.feature_dim = cfg.feature_dim;
  mc.num_classes = data->train_set->num_classes();
  mc.granularity = cfg.granularity;
  if (cfg.bn_stats == models::BnStatsMode::own && cfg.mode != TrainMode::parent) mc.bn_capacities = cfg.capacities;
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
  if (cfg.schedule == LrSchedule::multistep) {
    scheduler = std::make_unique<LrScheduler>(*optimizer, MultiStepOptions{cfg.lr, cfg.milestones, cfg.lr_gamma});
  } else {
    CosineWithWarmupOptions c;
    c.base_lr = cfg.lr;
    c.warmup_steps = std::min(cfg.warmup_steps, total_steps);
    c.total_steps = std::max<int64_t>(total_steps, 1);
    scheduler = std::make_unique<LrScheduler>(*optimizer, c);
  }

  StepOptions so;
  so.mode = cfg.mode;
  so.capacities = cfg.mode == TrainMode::parent ? std::vector<double>{} : cfg.capacities;
  so.extra_random_capacities = cfg.extra_random_capacities;
  so.bn_stats = cfg.bn_stats;
  so.task_clip_norm = cfg.task_clip_norm;
  so.clip_norm = cfg.clip_norm;
  so.label_smoothing = cfg.label_smoothing;
  so.compact_subnets = cfg.compact_subnets;
  so.integration = cfg.integration;
  step = std::make_unique<ScpnStep>(*model, *optimizer, so, cfg.seed);
  checkpointer = std::make_unique<Checkpointer>(cfg, *model, *optimizer, *scheduler);
}

std::pair<std::string, double> Trainer::State::epoch_metric(int64_t epoch) {
  const std::string label = cat("epoch ", epoch, " evaluation, ");
  model->eval();
  Progress features(console.get(), label + "features", set_images(data->test), "images");
  const SetEmbedding e = embed_set(*model, data->test, {1.0}, 256, &features);
  features.finish();
  model->train();
  if (data->test.has_accuracy()) return {"parent_test_accuracy", set_accuracy(data->test, e)};
  Progress ranking(console.get(), label + "ranking", data->test.queries(), "queries");
  RetrievalOptions ropt;
  ropt.recall_k = {1};
  ropt.progress = &ranking;
  const double recall = retrieve(data->test, e, e, ropt).recall[0];
  ranking.finish();
  return {"parent_test_recall@1", recall};
}

EvalReport Trainer::State::evaluate(RunLog& log) {
  EvalOptions eo;
  eo.capacities = cfg.eval_capacities;
  if (cfg.mode != TrainMode::parent && cfg.bn_stats == models::BnStatsMode::own) eo.trained_capacities = cfg.capacities;
  eo.bn_reestimate_batches = cfg.bn_reestimate_batches;
  eo.parent_bn_too = cfg.eval_parent_bn;
  eo.recall_k = cfg.recall_k;
  eo.console = console.get();
  eo.progress_label = "final evaluation";
  // Each re-estimated capacity averages training batches 0..N-1, as the eval and prune tools do, so
  // report.json and `eval --run` agree.
  const auto start = std::chrono::steady_clock::now();
  EvalReport report = evaluate_model(*model, data->test, eo, restarting_reestimation_batches(*data));
  phase_seconds.final_evaluation = seconds_since(start);
  json j = report.to_json();
  j["steps"] = pos.step;
  j["config"] = cfg.to_json();
  j["phase_seconds"] = phase_seconds.to_json();
  write_text_atomic(cfg.output_dir + "/report.json", j.dump(2) + "\n");
  write_text_atomic(cfg.output_dir + "/report.txt", report.table());
  log.report(report.table());
  return report;
}

Trainer::Trainer(TrainConfig config, TrainerOptions options) : s_(std::make_unique<State>()) {
  s_->cfg = std::move(config);
  s_->opt = std::move(options);
  s_->device = resolve_device(s_->cfg.device, "device");
  s_->console = std::make_unique<ProgressConsole>(ProgressConsole::style_for(s_->opt.quiet));
  s_->data = std::make_unique<ExperimentData>(s_->cfg);
  s_->loader = std::make_unique<data::Loader>(s_->data->train_set, s_->data->train_transforms,
                                              s_->data->loader_options(true, true));
  s_->steps_per_epoch = s_->loader->batches_per_epoch();
  s_->total_steps = s_->cfg.epochs * s_->steps_per_epoch;
  if (s_->cfg.steps > 0) s_->total_steps = std::min(s_->total_steps, s_->cfg.steps);
  s_->setup_model();
  fs::create_directories(s_->cfg.output_dir);
  if (s_->opt.resume) s_->pos = s_->checkpointer->resume();
  const auto decoding = std::chrono::steady_clock::now();
  s_->data->load_test_set(s_->console.get());
  s_->phase_seconds.test_set_decoding = seconds_since(decoding);
}

Trainer::~Trainer() = default;

const models::ResNet& Trainer::model() const { return *s_->model; }

TrainSummary Trainer::run() {
  State& s = *s_;
  const TrainConfig& cfg = s.cfg;
  TrainPosition& pos = s.pos;
  s.checkpointer->write_config();
  RunLog log(cfg, s.opt.resume, *s.console);
  log.start(pos.step, s.total_steps, s.steps_per_epoch, s.model->parameter_count(), s.data->train_set->size(), s.device);

  TrainSummary summary;
  double last_loss = 0;
  while (pos.step < s.total_steps && pos.epoch < cfg.epochs) {
    s.model->train();
    s.loader->start_epoch(pos.epoch, pos.batch);
    log.start_epoch();
    while (pos.step < s.total_steps) {
      std::optional<data::Batch> b = s.loader->next();
      if (!b) break;
      StepResult r = s.step->run(b->images.to(s.device), b->labels.to(s.device), pos.step);
      ++pos.step;
      ++pos.batch;
      last_loss = r.parent_loss;
      if (cfg.schedule == LrSchedule::cosine) s.scheduler->step();
      log.step(pos.step, pos.epoch, s.optimizer->lr(), r);
      if (cfg.checkpoint_every > 0 && pos.step % cfg.checkpoint_every == 0) s.checkpointer->save_last(pos);
    }
    bool epoch_done = pos.batch >= s.steps_per_epoch;
    if (epoch_done) {
      log.pause_training();
      const auto evaluation = std::chrono::steady_clock::now();
      const auto [metric, acc] = s.epoch_metric(pos.epoch);
      s.phase_seconds.epoch_evaluations.push_back(seconds_since(evaluation));
      log.end_epoch(pos.epoch, metric, acc);
      log.resume_training();
      ++pos.epoch;
      pos.batch = 0;
      if (cfg.schedule == LrSchedule::multistep) s.scheduler->step();
      if (acc > pos.best_accuracy) {
        pos.best_accuracy = acc;
        s.checkpointer->save_best(metric, acc);
      }
    }
    s.checkpointer->save_last(pos);
    if (!epoch_done) break;  // stopped by train.steps
  }
  s.phase_seconds.training = log.end_training();
  summary.steps = pos.step;
  summary.final_parent_loss = last_loss;
  if (cfg.save_final) s.checkpointer->save_final();
  if (s.opt.evaluate) summary.report = s.evaluate(log);
  summary.phase_seconds = s.phase_seconds;
  summary.seconds = log.finish();
  return summary;
}

}  // namespace scpn::train
