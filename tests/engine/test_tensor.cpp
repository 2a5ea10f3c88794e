// Tensor basics: shapes, views, dtype conversion (bf16/f16 rounding), devices, factories and Philox.
#include <doctest/doctest.h>

#include <cmath>

#include "engine/devices.h"
#include "engine/tensor.h"
#include "kernels/common/philox.h"
#include "tests/support/check.h"

using namespace scpn;

TEST_CASE("shape, numel, views share storage") {
  Tensor t = arange(24).reshape({2, 3, 4});
  CHECK(t.shape() == Shape{2, 3, 4});
  CHECK(t.numel() == 24);
  CHECK(t.size(-1) == 4);
  Tensor f = t.flatten(1);
  CHECK(f.shape() == Shape{2, 12});
  CHECK(f.raw_data() == t.raw_data());
  Tensor r = t.reshape({-1, 6});
  CHECK(r.shape() == Shape{4, 6});
  Tensor s = t.slice(1, 2);
  CHECK(s.shape() == Shape{1, 3, 4});
  CHECK(s.to_vector()[0] == 12.0);
  s.data<float>()[0] = 100.0f;  // a view writes through
  CHECK(t.to_vector()[12] == 100.0);
}

TEST_CASE("reshape and slice reject bad arguments with the shapes in the message") {
  Tensor t = zeros({2, 3});
  CHECK_THROWS_WITH_AS(t.reshape({4, 2}), "reshape: cannot view shape [2, 3] (6 elements) as [4, 2]", Error);
  CHECK_THROWS_WITH_AS(t.reshape({-1, -1}), "reshape: more than one -1 in [-1, -1]", Error);
  CHECK_THROWS_WITH_AS(t.slice(1, 3), "slice: rows [1, 3) out of range for shape [2, 3]", Error);
  CHECK_THROWS_WITH_AS(t.data<double>(), "data<f64>() on a f32 tensor", Error);
  CHECK_THROWS_WITH_AS(Tensor().shape(), "use of an undefined tensor", Error);
  CHECK_THROWS_WITH_AS(t.item(), "item() on a tensor of shape [2, 3]: needs exactly one element", Error);
}

TEST_CASE("every dtype round-trips through f64") {
  std::vector<double> v{0, 1, 2, 3, 100, 255};
  for (DType t : {DType::f32, DType::f64, DType::bf16, DType::f16, DType::i32, DType::i64, DType::u8}) {
    Tensor x = from_vector(v, {6}, t);
    CHECK(x.dtype() == t);
    CHECK(x.to_vector() == v);
  }
}

TEST_CASE("bf16 and f16 round to nearest even") {
  // 1 + 2^-8 lies exactly between two bf16 values (1 and 1 + 2^-7): ties to even gives 1.
  CHECK(bf16_to_float(float_to_bf16(1.0f + 1.0f / 256)) == 1.0f);
  CHECK(bf16_to_float(float_to_bf16(1.0f + 3.0f / 256)) == 1.0f + 4.0f / 256);
  // f16: 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even gives 1.
  CHECK(f16_to_float(float_to_f16(1.0f + 1.0f / 2048)) == 1.0f);
  CHECK(f16_to_float(float_to_f16(65504.0f)) == 65504.0f);
  CHECK(std::isinf(f16_to_float(float_to_f16(70000.0f))));
  CHECK(f16_to_float(float_to_f16(5.9604645e-08f)) == 5.9604645e-08f);  // smallest subnormal
  CHECK(std::isnan(f16_to_float(float_to_f16(NAN))));
  Tensor x = from_vector({0.1, -2.5, 3.14159}, {3}).to(DType::bf16).to(DType::f32);
  CHECK(x.to_vector()[0] == doctest::Approx(0.1).epsilon(1e-2));
  CHECK(x.to_vector()[1] == -2.5);
}

TEST_CASE("factories") {
  CHECK(zeros({3}).to_vector() == std::vector<double>{0, 0, 0});
  CHECK(ones({2}, DType::f64).to_vector() == std::vector<double>{1, 1});
  CHECK(full({2}, 7.5).to_vector() == std::vector<double>{7.5, 7.5});
  CHECK(arange(4, DType::i64).to_vector() == std::vector<double>{0, 1, 2, 3});
  CHECK_THROWS_WITH_AS(from_vector({1, 2}, {3}), "from_vector: 2 values for shape [3]", Error);
}

TEST_CASE("Philox matches the published known-answer vectors") {
  // Random123's kat_vectors for philox4x32_10: counter 0, key 0 and all-ones counter and key.
  PhiloxWords z = philox4x32_10(0, 0);
  CHECK(z.w[0] == 0x6627e8d5u);
  CHECK(z.w[1] == 0xe169c58du);
  CHECK(z.w[2] == 0xbc57ac4cu);
  CHECK(z.w[3] == 0x9b00dbd8u);
}

TEST_CASE("random streams are defined by (seed, offset)") {
  Generator a(7), b(7), c(8);
  Tensor x = uniform({1000}, -1, 1, a);
  Tensor y = uniform({1000}, -1, 1, b);
  Tensor z = uniform({1000}, -1, 1, c);
  CHECK(x.to_vector() == y.to_vector());
  CHECK(x.to_vector() != z.to_vector());
  CHECK(a.offset == 250);
  // The same stream as f64 holds the same values (24-bit uniforms are exact in f32).
  Generator d(7);
  Tensor x64 = uniform({1000}, -1, 1, d, DType::f64);
  CHECK(x64.to_vector() == x.to_vector());
  // Drawing in two pieces continues the stream block by block.
  Generator e(7);
  Tensor first = uniform({400}, -1, 1, e);
  Tensor second = uniform({600}, -1, 1, e);
  std::vector<double> joined = first.to_vector();
  auto s = second.to_vector();
  joined.insert(joined.end(), s.begin(), s.end());
  CHECK(joined == x.to_vector());
  // Moments.
  double mean = 0, sq = 0;
  for (double v : x.to_vector()) mean += v, sq += v * v;
  mean /= 1000, sq /= 1000;
  CHECK(std::abs(mean) < 0.06);
  CHECK(sq == doctest::Approx(1.0 / 3).epsilon(0.1));
  Generator g(3);
  auto n = normal({20000}, 2.0, 3.0, g).to_vector();
  double m = 0, v2 = 0;
  for (double q : n) m += q;
  m /= double(n.size());
  for (double q : n) v2 += (q - m) * (q - m);
  v2 /= double(n.size());
  CHECK(m == doctest::Approx(2.0).epsilon(0.03));
  CHECK(std::sqrt(v2) == doctest::Approx(3.0).epsilon(0.03));
}

TEST_CASE("kaiming initialisation bounds") {
  Generator g(1);
  Tensor w = kaiming_uniform({64, 16, 3, 3}, std::sqrt(5.0), g);
  double bound = std::sqrt(2.0 / 6.0) * std::sqrt(3.0 / 144.0);  // = 1/sqrt(fan_in)
  double mx = 0;
  for (double v : w.to_vector()) mx = std::max(mx, std::abs(v));
  CHECK(mx <= bound);
  CHECK(mx > 0.95 * bound);
  CHECK(bound == doctest::Approx(1.0 / 12.0));
}

TEST_CASE("cuda tensors without a CUDA backend or device give a clear error") {
  // A device index past the last device fails the same way in every build, with or without a GPU.
  const int missing = cuda_device_count();
  const std::string device = cat("cuda:", missing);
  if (cuda_backend_built()) {
    CHECK_THROWS_WITH_AS(zeros({2}, DType::f32, cuda_device(missing)),
                         doctest::Contains(("device " + device + " does not exist").c_str()), Error);
  } else {
    CHECK_THROWS_WITH_AS(zeros({2}, DType::f32, cuda_device(missing)),
                         ("device " + device + " requested but this build has no CUDA backend or no CUDA device").c_str(),
                         Error);
  }
}

TEST_CASE("printing") {
  std::string s = from_vector({1, 2, 3, 4}, {2, 2}).str();
  CHECK(s.find("Tensor(f32, cpu, [2, 2])") == 0);
  CHECK(s.find("1 2") != std::string::npos);
  CHECK(s.find("3 4") != std::string::npos);
}
