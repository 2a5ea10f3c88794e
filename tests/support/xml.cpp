// The SVG reader for tests (see xml.h): a single pass over the tags with a stack of open elements.
#include "tests/support/xml.h"

#include <regex>

#include "kernels/common/error.h"

namespace scpn::test {

std::vector<XmlElement> parse_xml(const std::string& doc) {
  std::vector<XmlElement> elements;
  std::vector<int> open;  // indices of the open elements
  size_t pos = 0, roots = 0;
  static const std::regex attr_re(R"re(\s+([A-Za-z_:][-A-Za-z0-9_:.]*)="([^"<]*)")re");
  static const std::regex entity_re(R"(&(amp|lt|gt|quot|apos);)");
  auto check_text = [&](const std::string& text) {
    std::string stripped = std::regex_replace(text, entity_re, "");
    if (stripped.find('&') != std::string::npos) throw Error("stray '&' in text: " + text);
  };
  if (doc.rfind("<?xml", 0) == 0) pos = doc.find("?>") + 2;
  while (true) {
    size_t lt = doc.find('<', pos);
    std::string text = doc.substr(pos, lt == std::string::npos ? std::string::npos : lt - pos);
    check_text(text);
    if (open.empty() && text.find_first_not_of(" \n\r\t") != std::string::npos) throw Error("text outside the root");
    if (lt == std::string::npos) break;
    size_t gt = doc.find('>', lt);
    if (gt == std::string::npos) throw Error("unterminated tag");
    std::string tag = doc.substr(lt + 1, gt - lt - 1);
    pos = gt + 1;
    if (tag[0] == '/') {
      if (open.empty() || elements[size_t(open.back())].name != tag.substr(1))
        throw Error("mismatched closing tag </" + tag.substr(1) + ">");
      open.pop_back();
      continue;
    }
    bool self_closing = tag.back() == '/';
    if (self_closing) tag.pop_back();
    size_t name_end = tag.find_first_of(" \n\t");
    XmlElement e;
    e.name = tag.substr(0, name_end);
    e.parent = open.empty() ? -1 : open.back();
    std::string rest = name_end == std::string::npos ? "" : tag.substr(name_end);
    for (std::sregex_iterator it(rest.begin(), rest.end(), attr_re), end; it != end; ++it) {
      if (!e.attrs.emplace((*it)[1], (*it)[2]).second) throw Error("duplicate attribute " + (*it)[1].str());
      check_text((*it)[2]);
    }
    if (std::regex_replace(rest, attr_re, "").find_first_not_of(" \n\t") != std::string::npos)
      throw Error("malformed attributes in <" + tag + ">");
    if (open.empty() && ++roots > 1) throw Error("more than one root element");
    elements.push_back(e);
    if (!self_closing) open.push_back(int(elements.size()) - 1);
  }
  if (!open.empty()) throw Error("unclosed <" + elements[size_t(open.back())].name + ">");
  if (roots != 1) throw Error("no root element");
  return elements;
}

namespace {

bool has_class(const XmlElement& e, const std::string& css_class) {
  auto it = e.attrs.find("class");
  return it != e.attrs.end() && it->second == css_class;
}

}  // namespace

std::vector<XmlElement> with_class(const std::vector<XmlElement>& all, const std::string& css_class) {
  std::vector<XmlElement> out;
  for (const XmlElement& e : all)
    if (has_class(e, css_class)) out.push_back(e);
  return out;
}

std::vector<XmlElement> with_class_inside(const std::vector<XmlElement>& all, const std::string& group_class,
                                          const std::string& css_class) {
  int group = -1;
  for (size_t i = 0; i < all.size() && group < 0; ++i)
    if (has_class(all[i], group_class)) group = int(i);
  if (group < 0) throw Error("no element of class '" + group_class + "'");
  std::vector<XmlElement> out;
  for (const XmlElement& e : all) {
    if (!has_class(e, css_class)) continue;
    for (int p = e.parent; p >= 0; p = all[size_t(p)].parent)
      if (p == group) {
        out.push_back(e);
        break;
      }
  }
  return out;
}

}  // namespace scpn::test
