// Stale temporary files and log lines past a checkpoint (see run_folder.h).
#include "train/run_folder.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "train/atomic_write.h"
#include "train/sample_log.h"

namespace scpn::train {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

bool process_is_gone(long pid) { return pid != long(::getpid()) && ::kill(pid_t(pid), 0) != 0 && errno == ESRCH; }

// Whether a log line describes something that happened before `p`: a step up to p.step, or the end of an
// epoch before p.epoch. A line that is not a JSON object was cut short by a kill.
bool before(const std::string& line, const TrainPosition& p) {
  const json j = json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return false;
  if (j.contains("step")) return j.at("step").is_number_integer() && j.at("step").get<int64_t>() <= p.step;
  return j.contains("epoch") && j.at("epoch").is_number_integer() && j.at("epoch").get<int64_t>() < p.epoch;
}

void cut_log(const std::string& path, const TrainPosition& p) {
  if (!fs::exists(path)) return;
  std::ifstream in(path);
  SCPN_CHECK(in.good(), path, ": cannot read");
  std::ostringstream kept;
  for (std::string line; std::getline(in, line);) {
    // Lines are in the order they happened: everything from the first line past the position goes.
    if (!before(line, p)) break;
    kept << line << "\n";
  }
  write_text_atomic(path, kept.str());
}

}  // namespace

std::vector<std::string> remove_stale_temporary_files(const std::string& output_dir) {
  static const std::regex temporary(R"(.+\.tmp\.([0-9]+))");
  std::vector<std::string> removed;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(output_dir, ec)) {
    const std::string name = e.path().filename().string();
    std::smatch m;
    if (!e.is_regular_file() || !std::regex_match(name, m, temporary)) continue;
    if (!process_is_gone(std::stol(m[1].str()))) continue;
    if (fs::remove(e.path(), ec)) removed.push_back(name);
  }
  return removed;
}

void cut_logs_back_to(const std::string& output_dir, const TrainPosition& p) {
  cut_log(output_dir + "/metrics.jsonl", p);
  cut_log(sample_log_path(output_dir), p);
}

}  // namespace scpn::train
