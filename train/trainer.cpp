// The train_scpn job: setup from the config, the training loop and the final evaluation. What the run
// reports as it goes is train/run_log, what it keeps on disk train/checkpointer.
#include "train/trainer.h"

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "engine/devices.h"
#include "engine/dist/connect.h"
#include "engine/non_finite.h"
#include "engine/optim/schedule.h"
#include "engine/optim/sgd.h"
#include "engine/safetensors.h"
#include "train/atomic_write.h"
#include "train/checkpointer.h"
#include "train/data_parallel.h"
#include "train/data/loader.h"
#include "train/scpn/recipe.h"
#include "train/eval/model_source.h"
#include "train/experiment_data.h"
#include "train/run_folder.h"
#include "train/run_log.h"
#include "train/sample_log.h"
#include "train/scpn/step.h"
#include "train/step_guard.h"
#include "train/stop_signals.h"

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
  // First, so that a SIGTERM/SIGINT during the setup is kept too: the loop then stops after the current
  // step, and the run writes its checkpoint and returns.
  StopSignals stop;
  TrainConfig cfg;
  TrainerOptions opt;
  std::unique_ptr<ExperimentData> data;
  std::unique_ptr<data::Loader> loader;
  std::unique_ptr<models::ResNet> model;
  std::unique_ptr<SGD> optimizer;
  std::unique_ptr<LrScheduler> scheduler;
  std::unique_ptr<ScpnStep> step;
  std::unique_ptr<StepGuard> guard;    // train.non_finite around the step
  std::unique_ptr<SampleLog> samples;  // debug.sample_log
  std::unique_ptr<Checkpointer> checkpointer;
  int64_t steps_per_epoch = 0, total_steps = 0;
  TrainPosition pos;
  Device device;  // where the model, its optimizer state and each batch live; data stays on the host
  std::unique_ptr<ProgressConsole> console;
  PhaseSeconds phase_seconds;
  // Data parallel (null in a one-process run): rank 0 logs, evaluates and writes the run folder.
  dist::LaunchInfo launch;
  std::unique_ptr<dist::Communicator> comm;
  std::unique_ptr<DataParallel> dp;
  bool is_root() const { return launch.rank == 0; }

  void join_group();
  void setup_data_parallel();
  // Runs the training loop; on this rank's failure the other ranks are told why before it propagates.
  template <class F>
  void guarded(F&& f);

  void setup_model();
  // The number an epoch is judged by (best.safetensors keeps the best): the parent's test accuracy on one
  // set, its query-to-gallery Recall@1 on a query/gallery split (whose items are not training classes).
  std::pair<std::string, double> epoch_metric(int64_t epoch);
  EvalReport evaluate(RunLog& log);
};

void Trainer::State::setup_model() {
  const models::ResNetConfig mc = model_config(cfg, data->channels, data->train_set->num_classes());
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

  optimizer = make_optimizer(cfg, *model);
  if (cfg.schedule == LrSchedule::multistep) {
    scheduler = std::make_unique<LrScheduler>(*optimizer, MultiStepOptions{cfg.lr, cfg.milestones, cfg.lr_gamma});
  } else {
    CosineWithWarmupOptions c;
    c.base_lr = cfg.lr;
    // The schedule spans the epochs; train.steps only stops the run early, so a run stopped by it and
    // resumed computes what an uninterrupted run does.
    const int64_t schedule_steps = cfg.epochs * steps_per_epoch;
    c.warmup_steps = std::min(cfg.warmup_steps, schedule_steps);
    c.total_steps = std::max<int64_t>(schedule_steps, 1);
    scheduler = std::make_unique<LrScheduler>(*optimizer, c);
  }

  StepOptions so = step_options(cfg);
  so.throw_on_non_finite = false;
  step = std::make_unique<ScpnStep>(*model, *optimizer, so, cfg.seed);
  guard = std::make_unique<StepGuard>(*model, *step, StepGuardOptions{cfg.non_finite, cfg.max_skipped_steps, cfg.inject_nan_step});
  checkpointer = std::make_unique<Checkpointer>(cfg, *model, *optimizer, *scheduler);
}

void Trainer::State::join_group() {
  if (!launch.distributed()) return;
  // Under a launcher, "auto" gives each process the GPU of its local rank.
  if (cfg.device == "auto" && device.is_cuda()) device = Device{DeviceType::cuda, launch.local_rank};
  SCPN_CHECK(cfg.batch_size % launch.world_size == 0, "train.batch_size=", cfg.batch_size, " is not divisible by the ",
             launch.world_size, " ranks: each rank takes an equal share of every batch");
  // Ranks sharing a machine's cores share them out, unless OMP_NUM_THREADS says otherwise.
  if (device.is_cpu() && launch.local_world_size > 1 && !std::getenv("OMP_NUM_THREADS"))
    set_cpu_threads(int(std::thread::hardware_concurrency()) / launch.local_world_size);
  comm = dist::connect(launch, cfg.dist_backend, device, dist::Seconds(cfg.dist_timeout_s));
}

void Trainer::State::setup_data_parallel() {
  if (!comm) return;
  std::vector<Tensor> params, buffers;
  for (auto& [name, p] : model->named_parameters()) params.push_back(p);
  for (auto& [name, b] : model->named_buffers()) buffers.push_back(b);
  dp = std::make_unique<DataParallel>(*comm, params, buffers,
                                      DataParallelOptions{.bucket_bytes = cfg.dist_bucket_mb << 20});
  // Output folder and device may differ per rank; everything that changes what is computed may not.
  json same = cfg.to_json();
  same.erase("output.dir");
  same.erase("device");
  dp->require_same(same.dump(), "the configuration");
  dp->broadcast_state("initial model");
  step->set_data_parallel(dp.get(), cfg.dist_sync_bn);
  checkpointer->set_world_size(comm->size());
}

template <class F>
void Trainer::State::guarded(F&& f) {
  try {
    f();
  } catch (const dist::CollectiveError&) {
    throw;  // the group already knows
  } catch (const std::exception& e) {
    if (comm) comm->abort(e.what());
    throw;
  }
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
  j["world_size"] = comm ? comm->size() : 1;
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
  State& s = *s_;
  s.device = resolve_device(s.cfg.device, "device");
  s.launch = s.opt.launch ? *s.opt.launch : dist::detect_launch(dist::process_environment());
  // Rank 0 speaks for the job; the others are quiet.
  s.console = std::make_unique<ProgressConsole>(ProgressConsole::style_for(s.opt.quiet || !s.is_root()));
  s.join_group();
  s.guarded([&] {
    s.data = std::make_unique<ExperimentData>(s.cfg);
    data::LoaderOptions lo = s.data->loader_options(true, true);
    lo.shard_index = s.launch.rank;
    lo.shard_count = s.launch.world_size;
    s.loader = std::make_unique<data::Loader>(s.data->train_set, s.data->train_transforms, lo);
    s.steps_per_epoch = s.loader->batches_per_epoch();
    s.total_steps = s.cfg.epochs * s.steps_per_epoch;
    if (s.cfg.steps > 0) s.total_steps = std::min(s.total_steps, s.cfg.steps);
    s.setup_model();
  });
  s.setup_data_parallel();
  s.guarded([&] {
    if (s.is_root()) {
      fs::create_directories(s.cfg.output_dir);
      remove_stale_temporary_files(s.cfg.output_dir);
    }
    // Every rank reads the checkpoint (the run folder is on a shared file system, or copied to each node).
    if (s.opt.resume) {
      s.pos = s.checkpointer->resume();
      if (s.is_root()) cut_logs_back_to(s.cfg.output_dir, s.pos);  // the steps after the checkpoint are logged again
    }
    // Data parallel: rank 0 logs its own shard's samples.
    if (s.cfg.sample_log && s.is_root()) s.samples = std::make_unique<SampleLog>(s.cfg.output_dir, s.opt.resume);
    set_check_op_outputs(s.cfg.detect_non_finite);
    // Rank 0 alone evaluates.
    if (s.is_root()) {
      const auto decoding = std::chrono::steady_clock::now();
      s.data->load_test_set(s.console.get());
      s.phase_seconds.test_set_decoding = seconds_since(decoding);
    }
  });
  if (s.dp) s.dp->require_same(cat(s.pos.step, " ", s.pos.epoch, " ", s.pos.batch), "the resumed position");
}

Trainer::~Trainer() = default;

const models::ResNet& Trainer::model() const { return *s_->model; }

TrainSummary Trainer::run() {
  State& s = *s_;
  const TrainConfig& cfg = s.cfg;
  TrainPosition& pos = s.pos;
  const bool root = s.is_root();
  if (root) s.checkpointer->write_config();
  RunLog log(cfg, s.opt.resume, *s.console, root);
  log.start(pos.step, s.total_steps, s.steps_per_epoch, s.model->parameter_count(), s.data->train_set->size(), s.device);
  if (s.comm)
    s.console->print(cat("data parallel: ", s.comm->size(), " ranks over ", s.comm->backend(), " (launcher ",
                         s.launch.launcher, "), ", cfg.batch_size / s.comm->size(), " images per rank per step",
                         s.device.is_cpu() ? cat(", ", cpu_threads(), " CPU thread", cpu_threads() == 1 ? "" : "s",
                                                 " per rank, ") : std::string(", "),
                         cfg.dist_sync_bn ? "synchronised BatchNorm" : "per-rank BatchNorm averaged after each step"));

  TrainSummary summary;
  summary.world_size = s.comm ? s.comm->size() : 1;
  double last_loss = 0;
  StopSignals& stop = s.stop;
  // Data parallel: the ranks stop together, at the first step after any of them was asked to.
  bool stopping = false;
  auto stop_requested = [&] {
    if (!stopping) stopping = s.dp ? s.dp->any(stop.requested() != 0, cat("step ", pos.step, " stop request")) : stop.requested() != 0;
    return stopping;
  };
  // An epoch whose steps are done but whose end (evaluation, best checkpoint) is not: a checkpoint taken
  // at its last step, then the process stopped or killed. The loop goes round once more for that end.
  auto epoch_end_pending = [&] { return pos.batch >= s.steps_per_epoch; };
  s.guarded([&] {
    while ((pos.step < s.total_steps || epoch_end_pending()) && pos.epoch < cfg.epochs && !stop_requested()) {
      s.model->train();
      s.loader->start_epoch(pos.epoch, pos.batch);
      while (pos.step < s.total_steps && !stop_requested()) {
        std::optional<data::Batch> b = s.loader->next();
        if (!b) break;
        if (s.samples) s.samples->write(pos, b->indices);
        StepResult r = s.guard->run(b->images.to(s.device), b->labels.to(s.device), pos);
        ++pos.step;
        ++pos.batch;
        if (r.non_finite.empty()) {  // a skipped step's loss counts in no mean
          last_loss = r.parent_loss;
          pos.add_loss(r.parent_loss);
        }
        if (cfg.schedule == LrSchedule::cosine) s.scheduler->step();
        log.step(pos.step, pos.epoch, s.optimizer->lr(), r);
        if (root && cfg.checkpoint_every > 0 && pos.step % cfg.checkpoint_every == 0) s.checkpointer->save_last(pos);
      }
      bool epoch_done = epoch_end_pending() && !stop_requested();
      if (epoch_done) {
        if (root) {
          log.pause_training();
          const auto evaluation = std::chrono::steady_clock::now();
          const auto [metric, acc] = s.epoch_metric(pos.epoch);
          s.phase_seconds.epoch_evaluations.push_back(seconds_since(evaluation));
          log.end_epoch(pos.epoch, pos.epoch_mean_loss(), metric, acc);
          log.resume_training();
          if (acc > pos.best_accuracy) {
            pos.best_accuracy = acc;
            s.checkpointer->save_best(metric, acc);
          }
        }
        if (s.comm) {
          // The other ranks wait for rank 0's evaluation; a rank that dies is still noticed at once.
          dist::LongerTimeout wait(*s.comm, dist::Seconds(24 * 3600));
          s.comm->barrier(cat("end of epoch ", pos.epoch));
        }
        pos.next_epoch();
        if (cfg.schedule == LrSchedule::multistep) s.scheduler->step();
      }
      if (root) s.checkpointer->save_last(pos);
      if (!epoch_done) break;  // stopped by train.steps or a signal
    }
  });
  s.phase_seconds.training = log.end_training();
  summary.steps = pos.step;
  summary.final_parent_loss = last_loss;
  summary.skipped_steps = pos.skipped_steps;
  if (stopping) {
    summary.stopped_by_signal = stop.requested() ? stop.requested() : SIGTERM;  // another rank's signal
    if (root) s.checkpointer->save_last(pos);  // again when the loop just did: a stop before the first step needs one too
    s.console->print(cat("train_scpn: stopped by ", summary.stopped_by_signal == SIGINT ? "SIGINT" : "SIGTERM", " after step ",
                         pos.step, "; ", last_checkpoint_path(cfg), " holds it: continue with --resume"));
    stop.acknowledge();
    return summary;
  }
  if (root && cfg.save_final) s.checkpointer->save_final();
  if (root && s.opt.evaluate) summary.report = s.evaluate(log);
  summary.phase_seconds = s.phase_seconds;
  summary.seconds = log.finish();
  return summary;
}

}  // namespace scpn::train
