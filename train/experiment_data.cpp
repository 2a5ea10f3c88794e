#include "train/experiment_data.h"

#include <filesystem>

#include "engine/error.h"
#include "train/data/idx.h"
#include "train/data/image_files.h"
#include "train/data/subset.h"

namespace scpn::train {

namespace {

namespace fs = std::filesystem;

// Where an In-shop copy keeps its partition file and the root its image paths are relative to: data.root
// itself (list_eval_partition.txt beside img/), or DeepFashion's release layout (Eval/list_eval_partition.txt,
// the paths "img/..." under Img/).
struct InShopLayout {
  std::string partition, images;
};
InShopLayout find_inshop_layout(const std::string& root) {
  if (fs::is_regular_file(root + "/list_eval_partition.txt")) return {root + "/list_eval_partition.txt", root};
  if (fs::is_regular_file(root + "/Eval/list_eval_partition.txt"))
    return {root + "/Eval/list_eval_partition.txt", fs::is_directory(root + "/Img") ? root + "/Img" : root};
  throw Error(cat("data.root ", root, ": no In-shop list_eval_partition.txt (looked for ", root,
                  "/list_eval_partition.txt and ", root, "/Eval/list_eval_partition.txt)"));
}

}  // namespace

ExperimentData::ExperimentData(const TrainConfig& cfg) : config(cfg) {
  if (cfg.dataset == DatasetKind::fashion_mnist) {
    channels = 1;
    data::IdxOptions train_opt, test_opt;
    train_opt.limit = cfg.train_limit > 0 ? cfg.train_limit : -1;
    test_opt.limit = cfg.test_limit > 0 ? cfg.test_limit : -1;
    train_opt.num_classes = test_opt.num_classes = 10;
    train_set = std::make_shared<data::IdxDataset>(data::IdxDataset::from_folder(cfg.data_root, true, train_opt));
    test_set = std::make_shared<data::IdxDataset>(data::IdxDataset::from_folder(cfg.data_root, false, test_opt));
    int64_t s = cfg.image_size;
    if (s != 28) {
      train_transforms.add(data::resize(s, s));
      test_transforms.add(data::resize(s, s));
    }
    if (cfg.augment) {
      train_transforms.add(data::random_crop(s, s, s / 14));  // 2 px at 28
      train_transforms.add(data::horizontal_flip(0.5));
    }
    // Fashion-MNIST's training-set mean and standard deviation.
    train_transforms.add(data::normalize({0.2860f}, {0.3530f}));
    test_transforms.add(data::normalize({0.2860f}, {0.3530f}));
  } else {  // RGB image files
    channels = 3;
    data::DecodeOptions decode;
    decode.channels = 3;
    if (cfg.dataset == DatasetKind::inshop) {
      const InShopLayout layout = find_inshop_layout(cfg.data_root);
      train_set = std::make_shared<data::ImageFileDataset>(
          data::inshop_dataset(layout.partition, layout.images, data::InShopSplit::train, decode));
      test_set = std::make_shared<data::ImageFileDataset>(
          data::inshop_dataset(layout.partition, layout.images, data::InShopSplit::query, decode));
      gallery_set = std::make_shared<data::ImageFileDataset>(
          data::inshop_dataset(layout.partition, layout.images, data::InShopSplit::gallery, decode));
    } else if (cfg.dataset == DatasetKind::gldv2) {
      auto all = std::make_shared<data::ImageFileDataset>(
          data::gldv2_dataset(cfg.data_root + "/train.csv", cfg.data_root, decode));
      SCPN_CHECK(all->num_classes() >= 2, cfg.data_root, "/train.csv: ", all->num_classes(),
                 " landmark(s); a class-disjoint split needs at least 2");
      const data::ClassSplit split = data::split_classes(all->num_classes(), cfg.held_out_classes);
      train_set = std::make_shared<data::ClassSubset>(all, split.kept);
      test_set = std::make_shared<data::ClassSubset>(all, split.held_out);
    } else {  // image_folder: root/train/<class>/..., root/test/<class>/...
      auto train_files = std::make_shared<data::ImageFileDataset>(data::image_folder_dataset(cfg.data_root + "/train", decode));
      auto test_files = std::make_shared<data::ImageFileDataset>(data::image_folder_dataset(cfg.data_root + "/test", decode));
      SCPN_CHECK(train_files->class_names() == test_files->class_names(), cfg.data_root,
                 ": train/ and test/ must have the same class folders");
      train_set = train_files;
      test_set = test_files;
    }
    int64_t s = cfg.image_size;
    if (cfg.augment) {
      train_transforms.add(data::random_resized_crop(s, s));
      train_transforms.add(data::horizontal_flip(0.5));
    } else {
      train_transforms.add(data::resize_shorter(s * 8 / 7)).add(data::center_crop(s, s));
    }
    test_transforms.add(data::resize_shorter(s * 8 / 7)).add(data::center_crop(s, s));
    std::vector<float> mean{0.485f, 0.456f, 0.406f}, stddev{0.229f, 0.224f, 0.225f};  // ImageNet's
    train_transforms.add(data::normalize(mean, stddev));
    test_transforms.add(data::normalize(mean, stddev));
  }
  // These name data.root: a list file that parsed but left too few images is the file to look at.
  const std::string where = "data.root " + cfg.data_root;
  SCPN_CHECK(train_set->size() >= cfg.batch_size, where, ": the training set has ", train_set->size(),
             " images, fewer than train.batch_size = ", cfg.batch_size);
  if (gallery_set) {
    SCPN_CHECK(test_set->size() >= 1, where, ": the query split has no image");
    SCPN_CHECK(gallery_set->size() >= 1, where, ": the gallery split has no image");
  } else {
    SCPN_CHECK(test_set->size() >= 2, where, ": the test set has ", test_set->size(), " images; retrieval needs at least 2");
  }
}
data::LoaderOptions ExperimentData::loader_options(bool shuffle, bool drop_last) const {
  const TrainConfig& cfg = config;
  data::LoaderOptions o;
  o.batch_size = cfg.batch_size;
  o.channels = channels;
  o.height = o.width = cfg.image_size;
  o.shuffle = shuffle;
  o.drop_last = drop_last;
  o.seed = cfg.seed;
  o.workers = int(cfg.workers);
  o.bad_images = cfg.bad_images;
  o.max_skipped = cfg.max_skipped;
  return o;
}
namespace {

// The images of `set` through the test transforms, in order, and their labels. One decoding pass either
// way (it reads the labels, which a bad-image replacement may change); the images are kept as one tensor
// [N, C, S, S] when it fits eval.in_memory_limit_mb, else decoded again on every later pass.
void load_images(const ExperimentData& d, const std::shared_ptr<data::Dataset>& set, ImageSet& images,
                 std::vector<int64_t>& labels, Progress& progress) {
  data::LoaderOptions o = d.loader_options(false, false);
  o.batch_size = 256;
  const int64_t s = d.config.image_size;
  const double bytes = double(set->size()) * double(d.channels * s * s) * sizeof(float);
  const bool keep = bytes <= double(d.config.in_memory_limit_mb) * 1024.0 * 1024.0;
  const int64_t n = set->size();
  Tensor all = keep ? Tensor::empty({n, d.channels, s, s}) : Tensor();
  data::Loader loader(set, d.test_transforms, o);
  loader.start_epoch(0);
  labels.clear();
  while (auto b = loader.next()) {
    const int64_t row = int64_t(labels.size());
    SCPN_CHECK(row + b->images.size(0) <= n, "load_test_set: the loader gave more than the set's ", n, " images");
    if (keep) all.slice(row, row + b->images.size(0)).copy_(b->images);
    for (double l : b->labels.to_vector()) labels.push_back(int64_t(l));
    progress.advance(b->images.size(0));
  }
  SCPN_CHECK(int64_t(labels.size()) == n, "load_test_set: the loader gave ", labels.size(), " of the set's ", n, " images");
  images = keep ? ImageSet::in_memory(all) : ImageSet::streamed(set, d.test_transforms, o);
}

}  // namespace

void ExperimentData::load_test_set(ProgressConsole* console) {
  test.labels_are_classes = config.dataset == DatasetKind::fashion_mnist || config.dataset == DatasetKind::image_folder;
  Progress queries(console, gallery_set ? "decoding the queries" : "decoding the test set", test_set->size(), "images");
  load_images(*this, test_set, test.query_images, test.query_labels, queries);
  queries.finish();
  if (gallery_set) {
    Progress gallery(console, "decoding the gallery", gallery_set->size(), "images");
    load_images(*this, gallery_set, test.gallery_images, test.gallery_labels, gallery);
    gallery.finish();
  }
}

std::function<Tensor(int64_t)> ExperimentData::reestimation_batches() const {
  // Un-augmented training images in a seeded order; the loader lives as long as the function.
  data::Pipeline plain = test_transforms;
  auto reest = std::make_shared<data::Loader>(train_set, plain, loader_options(true, true));
  auto next_index = std::make_shared<int64_t>(0);
  reest->start_epoch(0);
  return [reest, next_index](int64_t) {
    std::optional<data::Batch> b = reest->next();
    if (!b) {  // wrap to the next epoch when the set is small
      reest->start_epoch(++*next_index);
      b = reest->next();
    }
    return b->images.clone();
  };
}

}  // namespace scpn::train
