// Interrupted runs: SIGTERM during a checkpoint write stops the run after it, and the resumed run ends with
// the uninterrupted run's weights bit for bit; a checkpoint that cannot be written (a file-size limit, a
// NaN) leaves the previous one untouched and says so; a resumed run's folder loses the temporary files
// and log lines of the process that was killed. tools/reliability/check_kill_resume.sh adds kill -9 trials.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "engine/ops/elementwise.h"
#include "engine/optim/sgd.h"
#include "engine/safetensors.h"
#include "models/resnet.h"
#include "tests/support/skip.h"
#include "train/checkpointer.h"
#include "train/run_folder.h"
#include "train/trainer.h"

using namespace scpn;
using namespace scpn::train;
namespace fs = std::filesystem;

namespace {

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string temporary_of(const std::string& path) { return cat(path, ".tmp.", ::getpid()); }

// A tiny model with its optimizer and schedule, and a Checkpointer writing to `dir`.
struct CheckpointSetup {
  TrainConfig config;
  std::unique_ptr<models::ResNet> model;
  std::unique_ptr<SGD> optimizer;
  std::unique_ptr<LrScheduler> scheduler;
  std::unique_ptr<Checkpointer> checkpointer;
  explicit CheckpointSetup(const std::string& dir) {
    config.output_dir = dir;
    models::ResNetConfig c = models::ResNetConfig::named("resnet18");
    c.in_channels = 1;
    c.base_width = 2;
    c.feature_dim = 4;
    c.num_classes = 3;
    Generator gen(3);
    model = std::make_unique<models::ResNet>(c, gen);
    optimizer = std::make_unique<SGD>(model->parameters(), 0.1, SgdOptions{});
    scheduler = std::make_unique<LrScheduler>(*optimizer, MultiStepOptions{0.1, {}, 0.1});
    checkpointer = std::make_unique<Checkpointer>(config, *model, *optimizer, *scheduler);
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
};

TrainConfig tiny(const std::string& dir, std::vector<std::string> extra = {}) {
  std::vector<std::string> o = {"model.base_width=2", "model.feature_dim=8", "data.train_limit=96", "data.test_limit=40",
                                "train.batch_size=16", "train.epochs=2", "train.capacities=[0.5,0.25]",
                                "output.checkpoint_every=2", "output.dir=" + dir, "device=cpu"};
  o.insert(o.end(), extra.begin(), extra.end());
  return parse_config("", o);
}

}  // namespace

// metrics.jsonl without the fields that measure time.
std::string untimed_metrics(const std::string& path) {
  std::ifstream in(path);
  std::string out;
  for (std::string line; std::getline(in, line);) {
    nlohmann::json j = nlohmann::json::parse(line);
    j.erase("images_per_s");
    j.erase("step_ms");
    out += j.dump() + "\n";
  }
  return out;
}

TEST_CASE("SIGTERM inside a checkpoint write: the run stops after it and resumes to the same bits") {
  if (test::skip_without_fashion_mnist()) return;
  const std::string root = (fs::temp_directory_path() / "scpn_test_interruptions").string();
  fs::remove_all(root);
  TrainerOptions quiet{.quiet = true, .evaluate = false};
  Trainer full(tiny(root + "/full"), quiet);
  REQUIRE(full.run().steps == 12);

  // Checkpoint write number `write` (counted from 1; one every 2 steps, one more at each epoch's end)
  // pauses; the signal arrives there. The 2nd is step 4's; the 7th step 12's, the run's last step, taken
  // before that epoch's end (evaluation, best checkpoint), which the resumed run must still do.
  for (const int write : {2, 7}) {
  const int64_t stop_step = write == 2 ? 4 : 12;
  CAPTURE(write);
  const std::string dir = cat(root, "/stopped", write);
  std::atomic<bool> sent{false};
  std::thread signaller([&] {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    int seen = 0;
    bool inside = false;
    while (seen < write && std::chrono::steady_clock::now() < give_up) {
      const bool now = fs::exists(temporary_of(dir + "/last.safetensors"));
      if (now && !inside) ++seen;
      inside = now;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    sent = ::kill(::getpid(), SIGTERM) == 0;
  });
  TrainSummary stopped = Trainer(tiny(dir, {"debug.checkpoint_pause_ms=200"}), quiet).run();
  signaller.join();
  REQUIRE(sent);
  CHECK(stopped.stopped_by_signal == SIGTERM);
  CHECK(stopped.steps == stop_step);
  CHECK_FALSE(fs::exists(temporary_of(dir + "/last.safetensors")));
  CHECK_FALSE(fs::exists(dir + "/final.safetensors"));
  const auto position = nlohmann::json::parse(read_safetensors_header(dir + "/last.safetensors").metadata.at("position"));
  CHECK(position.at("step") == stop_step);

  TrainerOptions resume = quiet;
  resume.resume = true;
  Trainer resumed(tiny(dir), resume);
  TrainSummary done = resumed.run();
  CHECK(done.steps == 12);
  CHECK(done.stopped_by_signal == 0);
  // The same tensors, header and metadata: the files are equal byte for byte.
  CHECK(read_bytes(root + "/full/final.safetensors") == read_bytes(dir + "/final.safetensors"));
  // The same log: every step once, every epoch's line.
  CHECK(untimed_metrics(dir + "/metrics.jsonl") == untimed_metrics(root + "/full/metrics.jsonl"));
  }
}

TEST_CASE("a checkpoint past the file-size limit is not written; the previous one is kept, and the error says so") {
  const std::string dir = (fs::temp_directory_path() / "scpn_test_full_disk").string();
  CheckpointSetup s(dir);
  const std::string last = dir + "/last.safetensors";
  TrainPosition p;
  p.step = 2;
  s.checkpointer->save_last(p);
  const std::string before = read_bytes(last);
  REQUIRE(before.size() > 20000);

  // The limit sits in the middle of the checkpoint: the write fails with EFBIG, as on a full disk.
  struct rlimit saved {};
  REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved) == 0);
  struct rlimit limited = saved;
  limited.rlim_cur = 16384;
  auto previous_handler = ::signal(SIGXFSZ, SIG_IGN);
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &limited) == 0);
  p.step = 4;
  std::string message;
  try {
    s.checkpointer->save_last(p);
  } catch (const Error& e) {
    message = e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &saved);
  ::signal(SIGXFSZ, previous_handler);
  CHECK(message == cat("checkpoint of step 4 not written: save_safetensors: ", last, ": cannot write '", temporary_of(last),
                       "': File too large; the previous checkpoint ", last, " (step 2) is kept"));
  CHECK(read_bytes(last) == before);
  CHECK_FALSE(fs::exists(temporary_of(last)));

  // With no previous checkpoint, the error says that too.
  fs::remove(last);
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &limited) == 0);
  previous_handler = ::signal(SIGXFSZ, SIG_IGN);
  CHECK_THROWS_WITH_AS(s.checkpointer->save_last(p), doctest::Contains(("there is no previous checkpoint at " + last).c_str()), Error);
  ::setrlimit(RLIMIT_FSIZE, &saved);
  ::signal(SIGXFSZ, previous_handler);
  CHECK_FALSE(fs::exists(last));
}

TEST_CASE("a non-finite tensor is never written into a checkpoint") {
  const std::string dir = (fs::temp_directory_path() / "scpn_test_non_finite_checkpoint").string();
  CheckpointSetup s(dir);
  const std::string last = dir + "/last.safetensors";
  TrainPosition p;
  p.step = 6;
  s.checkpointer->save_last(p);
  const std::string before = read_bytes(last);
  for (auto& [name, t] : s.model->named_parameters())
    if (name == "layer1.0.conv2.weight") t.data<float>()[5] = NAN;
  p.step = 8;
  CHECK_THROWS_WITH_AS(s.checkpointer->save_last(p),
                       cat("checkpoint of step 8 not written: ", last, ": tensor 'layer1.0.conv2.weight': 1 of 36 values "
                           "is non-finite, the first nan at index 5; the previous checkpoint ", last, " (step 6) is kept")
                           .c_str(),
                       Error);
  CHECK(read_bytes(last) == before);
  CHECK_THROWS_WITH_AS(s.checkpointer->save_final(),
                       cat("final checkpoint not written: ", dir, "/final.safetensors: tensor 'layer1.0.conv2.weight': 1 "
                           "of 36 values is non-finite, the first nan at index 5; there is no previous checkpoint at ",
                           dir, "/final.safetensors")
                           .c_str(),
                       Error);
}

TEST_CASE("resuming tidies the run folder: stale temporary files go, log lines past the checkpoint go") {
  const std::string dir = (fs::temp_directory_path() / "scpn_test_run_folder").string();
  fs::remove_all(dir);
  fs::create_directories(dir);
  // A process that has exited: its pid names a stale temporary file.
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  REQUIRE(child > 0);
  ::waitpid(child, nullptr, 0);
  std::ofstream(cat(dir, "/last.safetensors.tmp.", child)) << "half";
  std::ofstream(temporary_of(dir + "/config.json")) << "ours, in progress";
  std::ofstream(dir + "/notes.tmp.txt") << "not a temporary file of ours";
  CHECK(remove_stale_temporary_files(dir) == std::vector<std::string>{cat("last.safetensors.tmp.", child)});
  CHECK(fs::exists(temporary_of(dir + "/config.json")));
  CHECK(fs::exists(dir + "/notes.tmp.txt"));

  std::ofstream(dir + "/metrics.jsonl") << "{\"step\":1,\"epoch\":0}\n{\"step\":2,\"epoch\":0}\n{\"epoch\":0,\"mean_parent_loss\":1}\n"
                                           "{\"step\":3,\"epoch\":1}\n{\"step\":4,\"epoch\":1}\n{\"step\":5,\"ep";
  std::ofstream(dir + "/samples.jsonl") << "{\"step\":1}\n{\"step\":2}\n{\"step\":3}\n{\"step\":4}\n";
  TrainPosition p;
  p.step = 3;
  p.epoch = 1;
  cut_logs_back_to(dir, p);
  CHECK(read_bytes(dir + "/metrics.jsonl") ==
        "{\"step\":1,\"epoch\":0}\n{\"step\":2,\"epoch\":0}\n{\"epoch\":0,\"mean_parent_loss\":1}\n{\"step\":3,\"epoch\":1}\n");
  CHECK(read_bytes(dir + "/samples.jsonl") == "{\"step\":1}\n{\"step\":2}\n{\"step\":3}\n");
  p.step = 2;  // a checkpoint at the end of epoch 0's steps, before its evaluation: that epoch's line goes too
  p.epoch = 0;
  cut_logs_back_to(dir, p);
  CHECK(read_bytes(dir + "/metrics.jsonl") == "{\"step\":1,\"epoch\":0}\n{\"step\":2,\"epoch\":0}\n");
}
