// Learning-rate schedules: MultiStep and CosineWithWarmup at chosen steps against their formulas, bad
// options rejected naming the option, and the scheduler applying them to an optimizer with save/restore.
#include <cmath>
#include <numbers>

#include <doctest/doctest.h>

#include "engine/optim/schedule.h"
#include "engine/optim/sgd.h"
#include "tests/support/check.h"

using namespace scpn;

TEST_CASE("MultiStep: the method page's x0.1 at epochs 5, 10, 20 of 30") {
  MultiStepOptions o{.base_lr = 0.1, .milestones = {5, 10, 20}, .gamma = 0.1};
  for (int64_t e = 0; e < 30; ++e) {
    double expected = e < 5 ? 0.1 : e < 10 ? 0.01 : e < 20 ? 0.001 : 0.0001;
    INFO("epoch ", e);
    CHECK(multistep_lr(o, e) == doctest::Approx(expected).epsilon(1e-12));
  }
  CHECK(multistep_lr(o, 1000) == doctest::Approx(1e-4).epsilon(1e-12));
  MultiStepOptions none{.base_lr = 0.3, .milestones = {}, .gamma = 0.5};
  CHECK(multistep_lr(none, 7) == 0.3);
  MultiStepOptions at_zero{.base_lr = 2.0, .milestones = {0, 3}, .gamma = 0.5};
  CHECK(multistep_lr(at_zero, 0) == 1.0);
  CHECK(multistep_lr(at_zero, 3) == 0.5);
}

TEST_CASE("CosineWithWarmup: warmup line, cosine, floor") {
  CosineWithWarmupOptions o{.base_lr = 1.0, .min_lr = 0.01, .warmup_steps = 10, .warmup_start_factor = 0.1,
                            .total_steps = 110};
  auto cosine = [&](int64_t s) {
    double progress = double(s - 10) / 100.0;
    return 0.01 + 0.99 * (1 + std::cos(std::numbers::pi * progress)) / 2;
  };
  CHECK(cosine_with_warmup_lr(o, 0) == doctest::Approx(0.1).epsilon(1e-14));
  CHECK(cosine_with_warmup_lr(o, 5) == doctest::Approx(0.55).epsilon(1e-14));
  CHECK(cosine_with_warmup_lr(o, 9) == doctest::Approx(0.91).epsilon(1e-14));
  CHECK(cosine_with_warmup_lr(o, 10) == doctest::Approx(1.0).epsilon(1e-14));
  CHECK(cosine_with_warmup_lr(o, 35) == doctest::Approx(cosine(35)).epsilon(1e-14));
  CHECK(cosine_with_warmup_lr(o, 35) == doctest::Approx(0.01 + 0.99 * (1 + std::sqrt(0.5)) / 2).epsilon(1e-14));
  CHECK(cosine_with_warmup_lr(o, 60) == doctest::Approx(0.505).epsilon(1e-14));  // halfway
  CHECK(cosine_with_warmup_lr(o, 109) == doctest::Approx(cosine(109)).epsilon(1e-14));
  CHECK(cosine_with_warmup_lr(o, 110) == 0.01);
  CHECK(cosine_with_warmup_lr(o, 500) == 0.01);
  // The curve never rises after warmup.
  for (int64_t s = 10; s < 120; ++s) CHECK(cosine_with_warmup_lr(o, s + 1) <= cosine_with_warmup_lr(o, s));
  // No warmup: starts at base_lr.
  CosineWithWarmupOptions plain{.base_lr = 0.2, .min_lr = 0, .warmup_steps = 0, .warmup_start_factor = 0,
                                .total_steps = 4};
  CHECK(cosine_with_warmup_lr(plain, 0) == doctest::Approx(0.2).epsilon(1e-15));
  CHECK(cosine_with_warmup_lr(plain, 2) == doctest::Approx(0.1).epsilon(1e-14));
}

TEST_CASE("schedules reject bad options naming the option") {
  auto ms = [](double base, std::vector<int64_t> milestones, double gamma) {
    return MultiStepOptions{.base_lr = base, .milestones = std::move(milestones), .gamma = gamma};
  };
  CHECK_THROWS_WITH_AS(multistep_lr(ms(-0.1, {5}, 0.1), 0), "MultiStep: option 'base_lr' must be finite and >= 0, got -0.1",
                       Error);
  CHECK_THROWS_WITH_AS(multistep_lr(ms(0.1, {10, 5, 20}, 0.1), 0),
                       "MultiStep: option 'milestones' must be strictly increasing, got [10, 5, 20]", Error);
  CHECK_THROWS_WITH_AS(multistep_lr(ms(0.1, {5, 5}, 0.1), 0),
                       "MultiStep: option 'milestones' must be strictly increasing, got [5, 5]", Error);
  CHECK_THROWS_WITH_AS(multistep_lr(ms(0.1, {-1, 5}, 0.1), 0), "MultiStep: option 'milestones' must be >= 0, got [-1, 5]",
                       Error);
  CHECK_THROWS_WITH_AS(multistep_lr(ms(0.1, {5}, 0), 0), "MultiStep: option 'gamma' must be finite and > 0, got 0", Error);
  CHECK_THROWS_WITH_AS(multistep_lr(ms(0.1, {5}, 0.1), -1), "MultiStep: step must be >= 0, got -1", Error);

  auto cw = [](double base, double min_lr, int64_t warmup, double factor, int64_t total) {
    return CosineWithWarmupOptions{.base_lr = base, .min_lr = min_lr, .warmup_steps = warmup,
                                   .warmup_start_factor = factor, .total_steps = total};
  };
  CHECK_THROWS_WITH_AS(cosine_with_warmup_lr(cw(0.1, 0, 200, 0, 100), 0),
                       "CosineWithWarmup: option 'warmup_steps' (200) must not exceed option 'total_steps' (100)", Error);
  CHECK_THROWS_WITH_AS(cosine_with_warmup_lr(cw(-1, 0, 0, 0, 100), 0),
                       "CosineWithWarmup: option 'base_lr' must be finite and >= 0, got -1", Error);
  CHECK_THROWS_WITH_AS(cosine_with_warmup_lr(cw(0.1, 0.2, 0, 0, 100), 0),
                       "CosineWithWarmup: option 'min_lr' must be in [0, base_lr], got 0.2", Error);
  CHECK_THROWS_WITH_AS(cosine_with_warmup_lr(cw(0.1, 0, 0, 1.5, 100), 0),
                       "CosineWithWarmup: option 'warmup_start_factor' must be in [0, 1], got 1.5", Error);
  CHECK_THROWS_WITH_AS(cosine_with_warmup_lr(cw(0.1, 0, 0, 0, 0), 0),
                       "CosineWithWarmup: option 'total_steps' must be > 0, got 0", Error);
  CHECK_THROWS_WITH_AS(cosine_with_warmup_lr(cw(0.1, 0, -2, 0, 10), 0),
                       "CosineWithWarmup: option 'warmup_steps' must be >= 0, got -2", Error);
  Tensor p = zeros({1}, DType::f64);
  SGD opt({p}, 0.5);
  CHECK_THROWS_WITH_AS(LrScheduler(opt, cw(0.1, 0, 200, 0, 100)),
                       "CosineWithWarmup: option 'warmup_steps' (200) must not exceed option 'total_steps' (100)", Error);
  CHECK(opt.lr() == 0.5);
}

TEST_CASE("LrScheduler drives an optimizer per epoch, and saves/restores its position") {
  Tensor w = zeros({2}, DType::f64), b = zeros({1}, DType::f64);
  SGD opt({SgdGroup{{w}, {.momentum = 0.9, .weight_decay = 5e-4}}, SgdGroup{{b}, {.momentum = 0.9}, 0.5}}, 1.0);
  MultiStepOptions recipe{.base_lr = 0.1, .milestones = {5, 10, 20}, .gamma = 0.1};
  LrScheduler sched(opt, recipe);
  CHECK(opt.lr() == 0.1);  // applied at construction
  CHECK(opt.group_lr(1) == doctest::Approx(0.05));
  for (int epoch = 1; epoch <= 12; ++epoch) {
    sched.step();
    CHECK(sched.position() == epoch);
    CHECK(opt.lr() == multistep_lr(recipe, epoch));
  }
  CHECK(opt.lr() == doctest::Approx(0.001).epsilon(1e-12));
  nlohmann::json saved = nlohmann::json::parse(sched.state().dump());
  CHECK(saved["position"] == 12);
  CHECK(saved["schedule"] == "MultiStep");

  // A fresh optimizer and scheduler resume at epoch 12.
  Tensor w2 = zeros({2}, DType::f64);
  SGD opt2({w2}, 1.0);
  LrScheduler sched2(opt2, recipe);
  CHECK(opt2.lr() == 0.1);
  sched2.load_state(saved);
  CHECK(sched2.position() == 12);
  CHECK(opt2.lr() == opt.lr());
  for (int i = 0; i < 10; ++i) {
    sched.step();
    sched2.step();
  }
  CHECK(opt2.lr() == opt.lr());
  CHECK(opt2.lr() == doctest::Approx(1e-4).epsilon(1e-12));

  // Bad state: named, and nothing changes.
  LrScheduler cosine(opt2, CosineWithWarmupOptions{.base_lr = 0.1, .min_lr = 0, .warmup_steps = 2,
                                                    .warmup_start_factor = 0.5, .total_steps = 10});
  CHECK_THROWS_WITH_AS(cosine.load_state(saved),
                       "LrScheduler.load_state: the state is for schedule 'MultiStep', this one is 'CosineWithWarmup'",
                       Error);
  nlohmann::json negative = saved;
  negative["position"] = -3;
  CHECK_THROWS_WITH_AS(sched2.load_state(negative), "LrScheduler.load_state: key 'position' must be >= 0, got -3", Error);
  nlohmann::json missing = saved;
  missing.erase("position");
  CHECK_THROWS_WITH_AS(sched2.load_state(missing), "LrScheduler.load_state: missing key 'position'", Error);
  CHECK(sched2.position() == 22);
  CHECK(cosine.position() == 0);
  CHECK(opt2.lr() == doctest::Approx(0.05).epsilon(1e-15));  // cosine's warmup start, set when it was built
}
