// The sample log's lines (see sample_log.h).
#include "train/sample_log.h"

#include <nlohmann/json.hpp>

#include "engine/error.h"

namespace scpn::train {

std::string sample_log_path(const std::string& output_dir) { return output_dir + "/samples.jsonl"; }

SampleLog::SampleLog(const std::string& output_dir, bool resume) : path_(sample_log_path(output_dir)) {
  out_.open(path_, resume ? std::ios::app : std::ios::trunc);
  SCPN_CHECK(out_.good(), path_, ": cannot open for writing");
}

void SampleLog::write(const TrainPosition& p, const std::vector<int64_t>& indices) {
  nlohmann::json line{{"step", p.step + 1}, {"epoch", p.epoch}, {"batch", p.batch}, {"indices", indices}};
  out_ << line.dump() << "\n" << std::flush;
  SCPN_CHECK(out_.good(), path_, ": cannot write");
}

}  // namespace scpn::train
