// End to end on the CPU: a small CNN (conv-BN-ReLU-pool ×2, global pool, linear) built from nn modules
// learns a synthetic 4-class image problem with SGD; the test states the loss and accuracy it must reach.
#include <doctest/doctest.h>

#include <cmath>

#include "engine/autograd.h"
#include "engine/nn/layers.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/loss.h"
#include "engine/ops/pool.h"
#include "engine/optim/sgd.h"

using namespace scpn;

namespace {

// 8x8 images: class 0 a horizontal bar, 1 a vertical bar, 2 a diagonal, 3 a small square; at a random
// position, plus noise. Labels and images from a seeded generator.
void make_batch(int64_t n, Generator& gen, Tensor& images, Tensor& labels) {
  std::vector<double> u = uniform({n, 4}, 0, 1, gen, DType::f64).to_vector();
  std::vector<double> noise = normal({n, 64}, 0, 0.3, gen, DType::f64).to_vector();
  std::vector<double> pix(static_cast<size_t>(n * 64)), lab(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    int cls = int(u[size_t(i * 4)] * 4);
    int a = 1 + int(u[size_t(i * 4 + 1)] * 5), b = 1 + int(u[size_t(i * 4 + 2)] * 5);
    double* img = &pix[size_t(i * 64)];
    for (int k = 0; k < 64; ++k) img[k] = noise[size_t(i * 64 + k)];
    for (int t = 0; t < 8; ++t) {
      if (cls == 0) img[a * 8 + t] += 1.5;
      if (cls == 1) img[t * 8 + b] += 1.5;
      if (cls == 2) img[t * 8 + t] += 1.5;
    }
    if (cls == 3)
      for (int y = a; y < a + 2; ++y)
        for (int x = b; x < b + 2; ++x) img[y * 8 + x] += 2.0;
    lab[size_t(i)] = cls;
  }
  images = from_vector(pix, {n, 1, 8, 8});
  labels = from_vector(lab, {n}, DType::i64);
}

struct ToyCnn : nn::Module {
  std::shared_ptr<nn::Conv2d> conv1, conv2;
  std::shared_ptr<nn::BatchNorm> bn1, bn2;
  std::shared_ptr<nn::Linear> fc;
  explicit ToyCnn(Generator& gen) {
    conv1 = register_module("conv1", std::make_shared<nn::Conv2d>(1, 8, 3, Conv2dOptions{.padding = 1}, false, gen));
    bn1 = register_module("bn1", std::make_shared<nn::BatchNorm>(8));
    conv2 = register_module("conv2", std::make_shared<nn::Conv2d>(8, 16, 3, Conv2dOptions{.padding = 1}, false, gen));
    bn2 = register_module("bn2", std::make_shared<nn::BatchNorm>(16));
    fc = register_module("fc", std::make_shared<nn::Linear>(16, 4, true, gen));
  }
  Tensor forward(const Tensor& x) const {
    Tensor h = max_pool2d(relu(bn1->forward(conv1->forward(x))), 2, 2);
    h = relu(bn2->forward(conv2->forward(h)));
    return fc->forward(global_avg_pool(h));
  }
};

}  // namespace

TEST_CASE("a small CNN learns the 4-class bar problem: train loss < 0.05, held-out accuracy > 98%") {
  Generator init(1), data(2);
  ToyCnn model(init);
  CHECK(model.named_parameters().size() == 8);
  CHECK(model.named_buffers().size() == 4);
  CHECK(model.named_parameters()[0].first == "conv1.weight");
  CHECK(model.named_buffers()[3].first == "bn2.running_var");

  SGD opt(model.parameters(), 0.1, SgdOptions{.momentum = 0.9, .weight_decay = 1e-4});
  double first_loss = 0, last_loss = 0;
  for (int step = 0; step < 150; ++step) {
    Tensor x, y;
    make_batch(32, data, x, y);
    Tensor loss = cross_entropy(model.forward(x), y);
    opt.zero_grad();
    backward(loss);
    opt.step();
    double l = loss.item();
    REQUIRE(std::isfinite(l));
    if (step == 0) first_loss = l;
    last_loss = step >= 140 ? last_loss + l / 10 : 0;  // mean of the last 10 steps
  }
  MESSAGE("toy CNN: first loss " << first_loss << ", mean of last 10 losses " << last_loss);
  CHECK(first_loss > 1.0);
  CHECK(last_loss < 0.05);

  model.eval();
  NoGradGuard no_grad;
  Tensor x, y;
  make_batch(400, data, x, y);
  std::vector<double> logits = model.forward(x).to_vector(), labels = y.to_vector();
  int correct = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    size_t best = 0;
    for (size_t c = 1; c < 4; ++c)
      if (logits[i * 4 + c] > logits[i * 4 + best]) best = c;
    correct += best == size_t(labels[i]);
  }
  double accuracy = double(correct) / double(labels.size());
  MESSAGE("toy CNN: held-out accuracy " << accuracy);
  CHECK(accuracy > 0.98);
}
