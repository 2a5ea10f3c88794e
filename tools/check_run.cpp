// The checks behind tools/reliability/*.sh, on the files a train_scpn run leaves: two checkpoints hold the
// same tensors bit for bit; a sample log (debug.sample_log) shows every training sample once per epoch;
// a checkpoint holds no NaN or Inf; a training checkpoint's step. Exit 0 when the check holds, 1 (with one
// line saying why) when it does not, 2 on a usage error.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "engine/non_finite.h"
#include "engine/safetensors.h"

using namespace scpn;
using json = nlohmann::json;

namespace {

const char* kUsage =
    "usage: check_run same-tensors A.safetensors B.safetensors\n"
    "       check_run samples LOG IMAGES BATCH STEPS [REFERENCE_LOG]\n"
    "       check_run finite FILE.safetensors\n"
    "       check_run step FILE.safetensors\n"
    "\n"
    "same-tensors: the same tensor names, dtypes, shapes and bytes (metadata is not compared).\n"
    "samples: LOG (samples.jsonl) has steps 1..STEPS once each, in order, batches numbered 0.. within each\n"
    "epoch, BATCH distinct dataset indices below IMAGES per step, no index twice in an epoch and, in a full\n"
    "epoch when BATCH divides IMAGES, every index; with REFERENCE_LOG, the same lines as it.\n"
    "finite: no tensor holds a NaN or Inf. step: prints the position's step of a training checkpoint.\n";

// Problems are thrown as Error and printed as the check's one line.
void same_tensors(const std::string& a_path, const std::string& b_path) {
  const SafetensorsFile a = read_safetensors(a_path), b = read_safetensors(b_path);
  if (a.tensors.size() != b.tensors.size())
    throw Error(cat(a_path, " has ", a.tensors.size(), " tensors, ", b_path, " ", b.tensors.size()));
  for (const NamedTensor& t : a.tensors) {
    const Tensor* other = b.find(t.name);
    if (!other) throw Error(cat("tensor '", t.name, "' is in ", a_path, " but not in ", b_path));
    if (other->dtype() != t.tensor.dtype() || other->shape() != t.tensor.shape())
      throw Error(cat("tensor '", t.name, "': ", dtype_name(t.tensor.dtype()), " ", shape_str(t.tensor.shape()), " vs ",
                      dtype_name(other->dtype()), " ", shape_str(other->shape())));
    if (std::memcmp(t.tensor.raw_data(), other->raw_data(), t.tensor.nbytes()) != 0) {
      const std::vector<double> x = t.tensor.to_vector(), y = other->to_vector();
      size_t i = 0;
      while (i < x.size() && std::memcmp(&x[i], &y[i], sizeof(double)) == 0) ++i;
      throw Error(cat("tensor '", t.name, "' differs: first at index ", i, " (", x[i], " vs ", y[i], ")"));
    }
  }
  std::printf("same tensors: %zu tensors bit for bit equal\n", a.tensors.size());
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(cat(path, ": cannot read"));
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

void samples(const std::string& path, int64_t images, int64_t batch, int64_t steps, const std::string& reference) {
  const std::vector<std::string> lines = read_lines(path);
  if (int64_t(lines.size()) != steps) throw Error(cat(path, ": ", lines.size(), " steps logged, ", steps, " expected"));
  int64_t epoch = 0, next_batch = 0, epochs = 0;
  std::set<int64_t> seen;
  auto end_epoch = [&] {
    // A full epoch of a set that splits into whole batches shows every sample.
    if (next_batch == images / batch && images % batch == 0 && int64_t(seen.size()) != images)
      throw Error(cat(path, ": epoch ", epoch, " saw ", seen.size(), " distinct samples of ", images));
    ++epochs;
  };
  for (size_t i = 0; i < lines.size(); ++i) {
    const json j = json::parse(lines[i], nullptr, false);
    const std::string where = cat(path, ": line ", i + 1);
    if (j.is_discarded() || !j.is_object()) throw Error(cat(where, ": not a JSON object"));
    if (j.value("step", int64_t(-1)) != int64_t(i) + 1) throw Error(cat(where, ": step ", j.value("step", int64_t(-1)), ", expected ", i + 1));
    const int64_t e = j.value("epoch", int64_t(-1)), b = j.value("batch", int64_t(-1));
    if (e != epoch) {
      if (e != epoch + 1 || b != 0) throw Error(cat(where, ": epoch ", e, " batch ", b, " follows epoch ", epoch, " batch ", next_batch - 1));
      end_epoch();
      epoch = e;
      next_batch = 0;
      seen.clear();
    }
    if (b != next_batch) throw Error(cat(where, ": batch ", b, " of epoch ", e, ", expected ", next_batch));
    ++next_batch;
    const std::vector<int64_t> indices = j.at("indices").get<std::vector<int64_t>>();
    if (int64_t(indices.size()) != batch) throw Error(cat(where, ": ", indices.size(), " samples, ", batch, " expected"));
    for (int64_t index : indices) {
      if (index < 0 || index >= images) throw Error(cat(where, ": sample ", index, " outside [0, ", images, ")"));
      if (!seen.insert(index).second) throw Error(cat(where, ": sample ", index, " seen twice in epoch ", e));
    }
  }
  if (!lines.empty()) end_epoch();
  if (!reference.empty()) {
    const std::vector<std::string> ref = read_lines(reference);
    for (size_t i = 0; i < lines.size() && i < ref.size(); ++i)
      if (lines[i] != ref[i]) throw Error(cat(path, ": step ", i + 1, " differs from ", reference));
    if (ref.size() != lines.size()) throw Error(cat(reference, " has ", ref.size(), " steps, ", path, " ", lines.size()));
  }
  std::printf("samples: %lld steps in %lld epochs, every sample at most once per epoch%s\n", (long long)steps,
              (long long)epochs, reference.empty() ? "" : ", same order as the reference");
}

void finite(const std::string& path) {
  const SafetensorsFile f = read_safetensors(path);
  for (const NamedTensor& t : f.tensors)
    if (auto v = find_non_finite(t.tensor))
      throw Error(cat(path, ": tensor '", t.name, "': ", describe_non_finite(t.tensor, *v)));
  std::printf("finite: %zu tensors\n", f.tensors.size());
}

void step(const std::string& path) {
  const SafetensorsMetadata meta = read_safetensors_header(path).metadata;
  auto it = meta.find("position");
  if (it == meta.end()) throw Error(cat(path, ": not a training checkpoint (no 'position' metadata)"));
  std::printf("%lld\n", (long long)json::parse(it->second).at("step").get<int64_t>());
}

int64_t number(const char* text) {
  char* end = nullptr;
  const long long v = std::strtoll(text, &end, 10);
  if (*text == '\0' || *end != '\0' || v < 1) throw Error(cat("'", text, "' is not a positive integer"));
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string command = argc > 1 ? argv[1] : "";
  try {
    if (command == "same-tensors" && argc == 4) {
      same_tensors(argv[2], argv[3]);
    } else if (command == "samples" && (argc == 6 || argc == 7)) {
      samples(argv[2], number(argv[3]), number(argv[4]), number(argv[5]), argc == 7 ? argv[6] : "");
    } else if (command == "finite" && argc == 3) {
      finite(argv[2]);
    } else if (command == "step" && argc == 3) {
      step(argv[2]);
    } else {
      std::fprintf(command == "--help" || command == "-h" ? stdout : stderr, "%s", kUsage);
      return command == "--help" || command == "-h" ? 0 : 2;
    }
  } catch (const std::exception& e) {
    std::printf("%s\n", e.what());
    return 1;
  }
  return 0;
}
