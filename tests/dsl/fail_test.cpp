// Failure cases as files: every tests/dsl/fail/*.graph carries its expected diagnostics inline,
//
//   # expected-error@+1 {{unknown model `gtp2`; did you mean `gpt2`?}}
//   x = gtp2.generate(s)
//   y = m.f(x)   # expected-warning {{computed but never used}}
//
// `@+N`/`@-N` are relative to the comment's line, `@N` is absolute; `:C` after it also pins the
// column (`@+1:7`). The text in braces must occur in the message. Every error and warning
// must be expected, and every expectation met. A `# RUN: require-models` line compiles with
// model files required. Expectations may also sit in imported files.
#include <doctest/doctest.h>

#include <filesystem>
#include <regex>
#include <set>

#include <fmt/format.h>

#include "tests/dsl/support.hpp"

namespace braid::test {
namespace {

struct Expectation {
  std::string file;
  dsl::Severity severity;
  std::uint32_t line;
  std::uint32_t col;  // 0: any
  std::string text;
  bool met = false;
};

std::vector<Expectation> parse_expectations(const dsl::SourceFile& f) {
  static const std::regex re(R"(expected-(error|warning|note)(@([+-]?)(\d+)(:(\d+))?)?\s*\{\{(.*?)\}\})");
  std::vector<Expectation> out;
  for (std::uint32_t line = 1; line <= f.line_count(); ++line) {
    std::string text(f.line_text(line));
    for (std::sregex_iterator it(text.begin(), text.end(), re), end; it != end; ++it) {
      const auto& m = *it;
      Expectation e;
      e.file = f.path();
      e.severity = m[1] == "error" ? dsl::Severity::Error : m[1] == "warning" ? dsl::Severity::Warning : dsl::Severity::Note;
      e.line = line;
      if (m[2].matched) {
        auto n = static_cast<std::uint32_t>(std::stoul(m[4]));
        e.line = m[3] == "+" ? line + n : m[3] == "-" ? line - n : n;
      }
      e.col = m[6].matched ? static_cast<std::uint32_t>(std::stoul(m[6])) : 0;
      e.text = m[7];
      out.push_back(std::move(e));
    }
  }
  return out;
}

bool matches(Expectation& e, const dsl::SourceManager& sm, dsl::Span span, dsl::Severity sev, const std::string& msg) {
  if (e.met || e.severity != sev || !span.valid()) return false;
  const auto& f = sm.file(span.file);
  if (f.path() != e.file) return false;
  auto lc = f.line_col(span.begin);
  if (lc.line != e.line || (e.col && lc.col != e.col)) return false;
  return msg.find(e.text) != std::string::npos;
}

std::string severity_word(dsl::Severity s) {
  return s == dsl::Severity::Error ? "error" : s == dsl::Severity::Warning ? "warning" : "note";
}

}  // namespace

TEST_SUITE("fail") {
  TEST_CASE("every failure case reports exactly its expected diagnostics") {
    auto files = list_files("tests/dsl/fail", ".graph");
    REQUIRE(files.size() >= 40);
    std::set<dsl::Diag> kinds_seen;
    for (const auto& path : files) {
      CAPTURE(path);
      std::string text = read_text(path);
      dsl::FrontendOptions opts;
      opts.require_model_files = text.find("# RUN: require-models") != std::string::npos;
      auto c = compile_text(text, path, opts);
      std::vector<Expectation> expected;
      for (std::size_t i = 0; i < c->sm.size(); ++i) {
        auto more = parse_expectations(c->sm.file(static_cast<dsl::FileId>(i)));
        expected.insert(expected.end(), more.begin(), more.end());
      }
      CHECK_MESSAGE(!expected.empty(), "a failure case must expect at least one diagnostic");
      std::string problems;
      for (const auto& d : c->diags.all()) {
        kinds_seen.insert(d.kind);
        bool found = false;
        for (auto& e : expected) {
          if (matches(e, c->sm, d.span, d.severity, d.message)) {
            e.met = found = true;
            break;
          }
        }
        if (!found && d.severity != dsl::Severity::Note) problems += "unexpected " + dsl::render(d, c->sm);
        for (const auto& n : d.notes) {
          for (auto& e : expected) {
            if (matches(e, c->sm, n.span.valid() ? n.span : d.span, dsl::Severity::Note, n.message)) {
              e.met = true;
              break;
            }
          }
        }
      }
      for (const auto& e : expected) {
        if (!e.met) problems += fmt::format("{}:{}:{}: expected {} not reported: {{{{{}}}}}\n", e.file, e.line, e.col,
                                            severity_word(e.severity), e.text);
      }
      CHECK_MESSAGE(problems.empty(), (problems + "\n--- all diagnostics ---\n" + c->rendered));
      CHECK_MESSAGE((c->plan == nullptr) == c->diags.has_errors(), "a plan must be produced exactly when there are no errors");
      auto wf = check_well_formed(*c);
      CHECK_MESSAGE(wf.empty(), wf);
    }
    // The folder covers the registry broadly: count distinct diagnostic kinds exercised.
    std::string summary = fmt::format("{} files, {} distinct diagnostic kinds", files.size(), kinds_seen.size());
    MESSAGE(summary);
    CHECK(kinds_seen.size() >= 40);
  }
}

}  // namespace braid::test
