// Parsing of the image-file sources (folder tree, list file, In-shop partition, GLDv2 csv) and the
// dataset that decodes their files on demand.
#include "train/data/image_files.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "engine/error.h"

namespace scpn::data {

namespace fs = std::filesystem;

// ---- the dataset -------------------------------------------------------------------------------------

ImageFileDataset::ImageFileDataset(std::vector<ImageFile> files, std::vector<std::string> class_names,
                                   DecodeOptions decode)
    : files_(std::move(files)), class_names_(std::move(class_names)), decode_(decode) {
  validate(decode_, "image dataset");
  SCPN_CHECK(!files_.empty(), "image dataset: no files");
  for (const ImageFile& f : files_)
    SCPN_CHECK(f.label >= 0 && f.label < num_classes(), "image dataset: label ", f.label, " of ", f.path,
               " is outside [0, ", num_classes(), ")");
}

const ImageFile& ImageFileDataset::file(int64_t i) const {
  SCPN_CHECK(i >= 0 && i < size(), "image dataset: index ", i, " out of range [0, ", size(), ")");
  return files_[size_t(i)];
}
const std::string& ImageFileDataset::path(int64_t i) const { return file(i).path; }
int64_t ImageFileDataset::label(int64_t i) const { return file(i).label; }
Image ImageFileDataset::load(int64_t i) const { return decode_image_file(file(i).path, decode_); }

// ---- parsing helpers ---------------------------------------------------------------------------------

namespace {

std::string join(const std::string& root, const std::string& rel) {
  if (!rel.empty() && rel[0] == '/') return rel;
  return root.empty() || root.back() == '/' ? root + rel : root + "/" + rel;
}

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

std::vector<std::string> split_whitespace(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    size_t start = i;
    while (i < s.size() && !std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    if (i > start) out.push_back(s.substr(start, i - start));
  }
  return out;
}

bool parse_nonnegative(const std::string& s, int64_t& value) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  return ec == std::errc() && end == s.data() + s.size() && value >= 0;
}

// Lines of a text file without their line ends ("\n" or "\r\n"). `what` names the file in errors. The
// file's size and line count are checked against kMaxListFileBytes and kMaxListLines first.
std::vector<std::string> read_lines(const std::string& path, const std::string& what) {
  auto refuse = [&](const auto&... reason) { return Error(cat(what, " ", path, ": ", reason...)); };
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw refuse("cannot open: ", errno ? std::strerror(errno) : "unknown reason");
  std::error_code ec;
  const uintmax_t size = fs::file_size(path, ec);
  if (!ec && size > uintmax_t(kMaxListFileBytes))
    throw refuse("file is ", size, " bytes, over the limit of ", kMaxListFileBytes, " bytes (",
                 kMaxListFileBytes >> 30, " GiB)");
  std::string text;
  char chunk[1 << 16];
  while (in.read(chunk, sizeof chunk) || in.gcount() > 0) {
    if (int64_t(text.size()) + in.gcount() > kMaxListFileBytes)
      throw refuse("more than the limit of ", kMaxListFileBytes, " bytes (", kMaxListFileBytes >> 30, " GiB)");
    text.append(chunk, size_t(in.gcount()));
  }
  if (in.bad()) throw refuse("read error");
  const int64_t newlines = std::count(text.begin(), text.end(), '\n');
  const int64_t line_count = newlines + (!text.empty() && text.back() != '\n' ? 1 : 0);
  if (line_count > kMaxListLines) throw refuse(line_count, " lines, over the limit of ", kMaxListLines);
  std::vector<std::string> lines;
  lines.reserve(size_t(line_count));
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    size_t stop = end > start && text[end - 1] == '\r' ? end - 1 : end;
    lines.emplace_back(text, start, stop - start);
    start = end + 1;
  }
  return lines;
}

void require_directory(const std::string& dir, const std::string& what) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error(cat(what, ": image root ", dir, " is not a directory"));
}

bool has_image_extension(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

// File text quoted in a message: control characters (a vertical tab, an escape sequence) become '?', so
// the message stays one line on a terminal however the file is damaged.
std::string printable(const std::string& text) {
  std::string out = text;
  for (char& c : out)
    if ((unsigned char)c < 0x20 || c == 0x7f) c = '?';
  return out;
}

// Splits one CSV record: fields separated by commas, optionally in double quotes ("" is a quote).
std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') fields.back() += '"', ++i;
      else if (c == '"') quoted = false;
      else fields.back() += c;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.emplace_back();
    } else {
      fields.back() += c;
    }
  }
  return fields;
}

}  // namespace

// ---- class-per-folder tree ---------------------------------------------------------------------------

ImageFileDataset image_folder_dataset(const std::string& root, DecodeOptions decode) {
  const std::string what = "image folder " + root;
  validate(decode, what);
  std::error_code ec;
  if (!fs::is_directory(root, ec)) throw Error(cat(what, ": not a directory"));
  std::vector<std::string> classes;
  std::vector<ImageFile> files;
  try {
    for (const fs::directory_entry& e : fs::directory_iterator(root))
      if (e.is_directory() && e.path().filename().string()[0] != '.') classes.push_back(e.path().filename().string());
    std::sort(classes.begin(), classes.end());
    SCPN_CHECK(!classes.empty(), what, ": no class folders");
    for (size_t label = 0; label < classes.size(); ++label) {
      std::vector<std::string> paths;
      fs::path dir = fs::path(root) / classes[label];
      for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink);
           it != fs::recursive_directory_iterator(); ++it) {
        if (it->path().filename().string()[0] == '.') {
          if (it->is_directory()) it.disable_recursion_pending();
          continue;
        }
        if (it->is_regular_file() && has_image_extension(it->path())) paths.push_back(it->path().string());
      }
      SCPN_CHECK(!paths.empty(), what, ": class folder '", classes[label], "' has no .jpg, .jpeg or .png files");
      std::sort(paths.begin(), paths.end());
      for (std::string& p : paths) files.push_back({std::move(p), int64_t(label)});
    }
  } catch (const fs::filesystem_error& e) {
    throw Error(cat(what, ": ", e.code().message(), " (", e.path1().string(), ")"));
  }
  return ImageFileDataset(std::move(files), std::move(classes), decode);
}

// ---- list file ---------------------------------------------------------------------------------------

ImageFileDataset list_file_dataset(const std::string& list_path, const std::string& root, DecodeOptions decode) {
  const std::string what = "list file " + list_path;
  validate(decode, what);
  std::vector<std::string> lines = read_lines(list_path, "list file");
  require_directory(root, what);
  std::vector<ImageFile> files;
  int64_t max_label = -1;
  for (size_t n = 0; n < lines.size(); ++n) {
    std::string line = trim(lines[n]);
    if (line.empty()) continue;
    size_t split = line.find_last_of(" \t");
    if (split == std::string::npos)
      throw Error(cat(what, ":", n + 1, ": expected '<path> <label>', got '", printable(line), "'"));
    std::string label_text = line.substr(split + 1);
    int64_t label = 0;
    if (!parse_nonnegative(label_text, label))
      throw Error(cat(what, ":", n + 1, ": label '", printable(label_text), "' is not a non-negative integer"));
    if (label > kMaxListLabel)
      throw Error(cat(what, ":", n + 1, ": label ", label, " is above the limit of ", kMaxListLabel,
                      " (kMaxListLabel: labels number the classes from 0)"));
    files.push_back({join(root, trim(line.substr(0, split))), label});
    max_label = std::max(max_label, label);
  }
  SCPN_CHECK(!files.empty(), what, ": no entries");
  std::vector<std::string> classes;
  for (int64_t c = 0; c <= max_label; ++c) classes.push_back(std::to_string(c));
  return ImageFileDataset(std::move(files), std::move(classes), decode);
}

// ---- DeepFashion In-shop -----------------------------------------------------------------------------

ImageFileDataset inshop_dataset(const std::string& partition_path, const std::string& root, InShopSplit split,
                                DecodeOptions decode) {
  const std::string what = "In-shop partition " + partition_path;
  validate(decode, what);
  std::vector<std::string> lines = read_lines(partition_path, "In-shop partition");
  require_directory(root, what);
  int64_t declared = 0;
  if (lines.empty() || !parse_nonnegative(trim(lines[0]), declared))
    throw Error(cat(what, ":1: expected the number of images"));
  if (lines.size() < 2 || split_whitespace(lines[1]) != std::vector<std::string>{"image_name", "item_id",
                                                                                  "evaluation_status"})
    throw Error(cat(what, ":2: expected the header 'image_name item_id evaluation_status'"));

  struct Entry {
    std::string path, item;
    InShopSplit split;
  };
  std::vector<Entry> entries;
  for (size_t n = 2; n < lines.size(); ++n) {
    std::vector<std::string> f = split_whitespace(lines[n]);
    if (f.empty()) continue;
    if (f.size() != 3)
      throw Error(cat(what, ":", n + 1, ": expected '<image> <item id> <train|query|gallery>', got '",
                      printable(trim(lines[n])), "'"));
    InShopSplit s;
    if (f[2] == "train") s = InShopSplit::train;
    else if (f[2] == "query") s = InShopSplit::query;
    else if (f[2] == "gallery") s = InShopSplit::gallery;
    else throw Error(cat(what, ":", n + 1, ": unknown evaluation_status '", printable(f[2]), "'"));
    entries.push_back({f[0], f[1], s});
  }
  SCPN_CHECK(int64_t(entries.size()) == declared, what, ": the first line declares ", declared,
             " images but ", entries.size(), " follow");

  // Query and gallery share one numbering; train has its own.
  auto in_numbering = [&](InShopSplit s) { return (s == InShopSplit::train) == (split == InShopSplit::train); };
  std::set<std::string> items;
  for (const Entry& e : entries)
    if (in_numbering(e.split)) items.insert(e.item);
  std::map<std::string, int64_t> label_of;
  std::vector<std::string> classes(items.begin(), items.end());
  for (size_t i = 0; i < classes.size(); ++i) label_of[classes[i]] = int64_t(i);

  std::vector<ImageFile> files;
  for (const Entry& e : entries)
    if (e.split == split) files.push_back({join(root, e.path), label_of.at(e.item)});
  static const char* split_names[] = {"train", "query", "gallery"};
  SCPN_CHECK(!files.empty(), what, ": no ", split_names[int(split)], " images");
  return ImageFileDataset(std::move(files), std::move(classes), decode);
}

// ---- GLDv2 train.csv ---------------------------------------------------------------------------------

ImageFileDataset gldv2_dataset(const std::string& csv_path, const std::string& root, DecodeOptions decode) {
  const std::string what = "GLDv2 csv " + csv_path;
  validate(decode, what);
  std::vector<std::string> lines = read_lines(csv_path, "GLDv2 csv");
  require_directory(root, what);
  SCPN_CHECK(!lines.empty(), what, ": empty file");
  std::vector<std::string> header = split_csv(lines[0]);
  auto column = [&](const char* name) {
    auto it = std::find(header.begin(), header.end(), name);
    if (it == header.end()) throw Error(cat(what, ":1: the header has no '", name, "' column"));
    return size_t(it - header.begin());
  };
  const size_t id_col = column("id"), landmark_col = column("landmark_id");

  std::vector<std::pair<std::string, int64_t>> rows;  // image id, landmark id
  for (size_t n = 1; n < lines.size(); ++n) {
    if (trim(lines[n]).empty()) continue;
    std::vector<std::string> f = split_csv(lines[n]);
    if (f.size() != header.size())
      throw Error(cat(what, ":", n + 1, ": ", f.size(), " fields, the header has ", header.size()));
    const std::string& id = f[id_col];
    bool id_ok = id.size() >= 3 && std::all_of(id.begin(), id.end(), [](unsigned char c) { return std::isalnum(c); });
    if (!id_ok) throw Error(cat(what, ":", n + 1, ": image id '", printable(id), "' is not at least 3 letters or digits"));
    int64_t landmark = 0;
    if (!parse_nonnegative(f[landmark_col], landmark))
      throw Error(cat(what, ":", n + 1, ": landmark_id '", printable(f[landmark_col]), "' is not a non-negative integer"));
    rows.emplace_back(id, landmark);
  }
  SCPN_CHECK(!rows.empty(), what, ": no images");

  std::set<int64_t> landmarks;
  for (const auto& r : rows) landmarks.insert(r.second);
  std::map<int64_t, int64_t> label_of;
  std::vector<std::string> classes;
  for (int64_t l : landmarks) {
    label_of[l] = int64_t(classes.size());
    classes.push_back(std::to_string(l));
  }
  std::vector<ImageFile> files;
  files.reserve(rows.size());
  for (const auto& [id, landmark] : rows) {
    std::string rel = cat(id[0], "/", id[1], "/", id[2], "/", id, ".jpg");
    files.push_back({join(root, rel), label_of.at(landmark)});
  }
  return ImageFileDataset(std::move(files), std::move(classes), decode);
}

}  // namespace scpn::data
