#include "tests/dsl/support.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace braid::test {

std::unique_ptr<Compiled> compile_text(const std::string& text, const std::string& path,
                                       const dsl::FrontendOptions& options) {
  auto c = std::make_unique<Compiled>();
  c->plan = dsl::compile_source(path, text, options, c->sm, c->diags);
  c->rendered = dsl::render_all(c->diags, c->sm);
  return c;
}

std::string check_well_formed(const Compiled& c) {
  for (const auto& d : c.diags.all()) {
    if (d.message.empty()) return "empty message";
    if (d.message.back() == '.') return "message ends with a period: " + d.message;
    if (d.message.find('\n') != std::string::npos) return "message spans lines: " + d.message;
    if (!d.span.valid()) {
      if (d.kind != dsl::Diag::cannot_read_file) return "diagnostic without location: " + d.message;
      continue;
    }
    if (d.span.file >= c.sm.size()) return "span in unknown file";
    const auto& f = c.sm.file(d.span.file);
    if (d.span.begin > f.text().size() || d.span.end > f.text().size() || d.span.end < d.span.begin) {
      return fmt::format("span {}..{} outside file of {} bytes: {}", d.span.begin, d.span.end, f.text().size(), d.message);
    }
    std::string block = dsl::render(d, c.sm);
    auto lc = f.line_col(d.span.begin);
    std::string_view sev = d.severity == dsl::Severity::Error ? "error" : d.severity == dsl::Severity::Warning ? "warning" : "note";
    std::string head = fmt::format("{}:{}:{}: {}: {}\n", f.path(), lc.line, lc.col, sev, d.message);
    if (block.rfind(head, 0) != 0) return "bad first line: " + block.substr(0, block.find('\n'));
    std::istringstream lines(block);
    std::string l1, l2, l3;
    std::getline(lines, l1);
    std::getline(lines, l2);
    std::getline(lines, l3);
    if (l2.rfind("  ", 0) != 0) return "source line not indented: " + l2;
    auto caret = l3.find('^');
    if (caret == std::string::npos) return "no caret line: " + l3;
    if (l3.find_first_not_of(" \t") != caret) return "caret line has junk before the caret: " + l3;
    if (l3.find_first_not_of('~', caret + 1) != std::string::npos) return "caret line has junk after the caret: " + l3;
  }
  return {};
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> list_files(const std::string& dir, const std::string& ext) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.is_regular_file() && e.path().extension() == ext) out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace braid::test
