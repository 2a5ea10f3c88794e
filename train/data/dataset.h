// The interface every data source implements: a fixed-size, indexable set of labelled images. The
// loader calls load() from several worker threads at once, so implementations keep load() free of
// shared mutable state.
#pragma once
#include <cstdint>
#include <string>

#include "train/data/image.h"

namespace scpn::data {

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual int64_t num_classes() const = 0;
  virtual int64_t label(int64_t i) const = 0;  // in [0, num_classes)
  // Sample i as a CHW float image in [0, 1] at its stored size. Thread-safe. Throws SampleError when
  // the sample cannot be read (the loader's bad-image policy decides what happens then).
  virtual Image load(int64_t i) const = 0;
  // Names sample i in messages: its file path, or "<file>[i]" for samples packed in one file.
  virtual std::string describe(int64_t i) const = 0;
};

}  // namespace scpn::data
