// debug.sample_log: <output.dir>/samples.jsonl, one line per step with the dataset indices of its batch, so
// that a check (tools/reliability/check_kill_resume.sh) can prove that every training sample is seen
// exactly once per epoch, also across interruptions and resumes.
#pragma once
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "train/checkpointer.h"

namespace scpn::train {

std::string sample_log_path(const std::string& output_dir);

class SampleLog {
 public:
  // Appends when resuming (run_folder.h has cut the file back to the checkpoint's position).
  SampleLog(const std::string& output_dir, bool resume);
  // {"step": 3, "epoch": 0, "batch": 2, "indices": [...]} for the step that follows `position` (numbered
  // 1-based, as metrics.jsonl numbers steps). Flushed at once: a killed process loses no line it finished.
  void write(const TrainPosition& position, const std::vector<int64_t>& indices);

 private:
  std::string path_;
  std::ofstream out_;
};

}  // namespace scpn::train
