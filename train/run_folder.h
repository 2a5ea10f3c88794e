// Putting a run folder back in order before a run starts or resumes: a killed process may have left the
// temporary file of an atomic write, and log lines of steps after its last checkpoint, which the resumed
// run computes and logs again.
#pragma once
#include <string>
#include <vector>

#include "train/checkpointer.h"

namespace scpn::train {

// Removes "<name>.tmp.<pid>" files (atomic writes in progress, train/atomic_write.h) whose process is no
// longer running. Returns their names.
std::vector<std::string> remove_stale_temporary_files(const std::string& output_dir);

// Cuts metrics.jsonl and samples.jsonl (when present) back to `position`, the checkpoint a run resumes
// from: step lines after position.step, epoch lines of epochs from position.epoch on, and a last line a
// kill cut short are dropped; each file is rewritten atomically.
void cut_logs_back_to(const std::string& output_dir, const TrainPosition& position);

}  // namespace scpn::train
