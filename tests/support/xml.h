// A small XML reader for the SVG pictures the report writes: checks that a document is well-formed and
// returns its elements in document order with their attributes and parent, so tests can find the parts of
// a picture by class.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace scpn::test {

struct XmlElement {
  std::string name;
  std::map<std::string, std::string> attrs;
  int parent = -1;  // index of the enclosing element; -1 for the root
};

// Well-formed: one root, every tag closed in order, attributes quoted and unique, text without raw '<' or
// a stray '&'. Throws scpn::Error naming the fault otherwise.
std::vector<XmlElement> parse_xml(const std::string& doc);

// The elements whose class attribute is exactly `css_class`.
std::vector<XmlElement> with_class(const std::vector<XmlElement>& all, const std::string& css_class);

// The elements of class `css_class` inside the first element of class `group_class` (at any depth);
// throws when there is no such group.
std::vector<XmlElement> with_class_inside(const std::vector<XmlElement>& all, const std::string& group_class,
                                          const std::string& css_class);

}  // namespace scpn::test
