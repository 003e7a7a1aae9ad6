#pragma once
// The fuzzing harness shared by fuzz_test.cpp (mutated and random inputs) and
// fuzz_limits_test.cpp (pathological inputs, numbers, linear cost): seeds, mutation corpus,
// per-input checks, minimisation and statistics. See fuzz_test.cpp for what is checked.

#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "tests/dsl/support.hpp"


// Not every file uses every helper.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"

namespace braid::test {
// Each test translation unit gets its own copy of these helpers (an unnamed namespace in a
// test-only header), so their statics (the corpus, the fragments) are per file.
namespace {

constexpr std::uint64_t kDefaultSeed = 0x6272616964ULL;  // "braid"
constexpr std::size_t kDefaultIters = 20000;
constexpr std::size_t kErrorLimit = 100;  // Diagnostics' default error limit
constexpr double kRunawayMs = 2000;
constexpr double kSlowMs = 200;  // inputs slower than this are listed
constexpr std::size_t kMaxReportedFailures = 10;  // distinct kinds of problem per test case
constexpr std::size_t kMaxMinimiseBytes = 64 << 10;
constexpr std::size_t kMaxRenderRatio = 300;
constexpr int kMinimiseSeconds = 5;

std::uint64_t env_u64(const char* name, std::uint64_t dflt) {
  const char* v = std::getenv(name);
  if (!v || !*v) return dflt;
  char* end = nullptr;
  std::uint64_t x = std::strtoull(v, &end, 0);
  return end && *end == '\0' ? x : dflt;
}

std::uint64_t fuzz_seed() {
  static const std::uint64_t seed = [] {
    std::uint64_t s = env_u64("BRAID_FUZZ_SEED", kDefaultSeed);
    fmt::print("[fuzz] seed {:#x} (set BRAID_FUZZ_SEED to override), iterations {} (BRAID_FUZZ_ITERS)\n", s,
               env_u64("BRAID_FUZZ_ITERS", kDefaultIters));
    std::fflush(stdout);
    return s;
  }();
  return seed;
}

std::size_t fuzz_iters() { return static_cast<std::size_t>(env_u64("BRAID_FUZZ_ITERS", kDefaultIters)); }

// A C string literal that reproduces `s` byte for byte (octal escapes cannot run on into a
// following digit the way \x escapes do). Long inputs are cut in the middle.
std::string escape(std::string_view s, std::size_t max = 3000) {
  auto esc = [](std::string_view part) {
    std::string out;
    for (unsigned char c : part) {
      switch (c) {
        case '\n': out += "\\n"; break;
        case '\t': out += "\\t"; break;
        case '\r': out += "\\r"; break;
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '?': out += "\\?"; break;  // no trigraphs
        default:
          if (c >= 0x20 && c < 0x7f) {
            out.push_back(static_cast<char>(c));
          } else {
            out += fmt::format("\\{:03o}", c);
          }
      }
    }
    return out;
  };
  if (s.size() <= max) return "\"" + esc(s) + "\"";
  return fmt::format("\"{}\" /* ... {} bytes left out ... */ \"{}\"", esc(s.substr(0, max / 2)), s.size() - max,
                     esc(s.substr(s.size() - max / 2)));
}

// ---------------------------------------------------------------------------------------------
// Running one input and checking the invariants.

struct Stats {
  std::size_t inputs = 0;
  std::size_t with_errors = 0;
  std::size_t with_plan = 0;
  std::size_t max_errors = 0;
  std::size_t max_rendered = 0;
  std::size_t failures = 0;
  double total_ms = 0;
  double slowest_ms = 0;
  std::string slowest_label;
  std::size_t slowest_bytes = 0;
  std::set<std::string> reported;  // problem categories already reported

  void print(std::string_view what) const {
    fmt::print("[fuzz] {}: {} inputs, {} with errors, {} compiled to a plan, at most {} errors, largest "
               "rendering {} bytes, {:.0f} ms in all, slowest {:.1f} ms ({}, {} bytes), {} failures\n",
               what, inputs, with_errors, with_plan, max_errors, max_rendered, total_ms, slowest_ms, slowest_label,
               slowest_bytes, failures);
    std::fflush(stdout);
  }
};

// What is wrong with the result of compiling `text`, or empty. Every problem reads
// "category: detail".
std::string problems(const Compiled& c) {
  std::size_t error_diags = 0;
  for (const auto& d : c.diags.all()) error_diags += d.severity == dsl::Severity::Error ? 1 : 0;
  if ((c.plan != nullptr) == c.diags.has_errors()) {
    return c.plan ? "inconsistent: a plan despite errors" : "inconsistent: no plan and no error";
  }
  if (std::string wf = check_well_formed(c); !wf.empty()) return "malformed diagnostic: " + wf;
  for (const auto& d : c.diags.all()) {
    for (const auto& n : d.notes) {
      if (n.message.empty() || n.message.find('\n') != std::string::npos) {
        return "malformed diagnostic: note message empty or spans lines: " + n.message;
      }
      if (!n.span.valid()) continue;
      if (n.span.file >= c.sm.size()) return "malformed diagnostic: note span in unknown file";
      auto size = c.sm.file(n.span.file).text().size();
      if (n.span.begin > size || n.span.end > size || n.span.end < n.span.begin) {
        return fmt::format("malformed diagnostic: note span {}..{} outside file of {} bytes: {}", n.span.begin,
                           n.span.end, size, n.message);
      }
    }
  }
  if (c.diags.error_count() > kErrorLimit || error_diags > kErrorLimit + 1) {
    return fmt::format("too many errors: {} ({} error diagnostics), over the limit of {}", c.diags.error_count(),
                       error_diags, kErrorLimit);
  }
  if (!c.diags.all().empty() && c.rendered.empty()) return "empty rendering: diagnostics but nothing rendered";
  // Each error renders its source line; at most ~100 errors are reported, so the rendering may be
  // ~100 times the input, never quadratic in it.
  std::size_t input_bytes = 0;
  for (std::size_t f = 0; f < c.sm.size(); ++f) input_bytes += c.sm.file(static_cast<dsl::FileId>(f)).text().size();
  if (c.rendered.size() > kMaxRenderRatio * input_bytes + (1u << 20)) {
    return fmt::format("rendering too large: {} bytes of diagnostics for {} bytes of input", c.rendered.size(),
                       input_bytes);
  }
  if (c.plan) {
    // A plan must survive its dumps (what `braid plan` prints).
    if (plan::to_text(*c.plan).empty() || plan::to_dot(*c.plan).empty() || plan::to_json(*c.plan).empty()) {
      return "empty dump: a plan dump is empty";
    }
  }
  return {};
}

// The kind of a problem, for deduplicating reports and for minimising: "runaway",
// "malformed diagnostic: message spans lines", ...
std::string category(const std::string& why) {
  std::size_t colon = why.find(':');
  std::string cat = why.substr(0, colon);
  if (cat == "malformed diagnostic" && colon != std::string::npos) {
    std::string rest = why.substr(colon + 2);
    cat += ": " + rest.substr(0, rest.find_first_of(":0123456789`"));
  }
  return cat;
}

struct Outcome {
  std::string why;  // empty when every invariant holds
  std::unique_ptr<Compiled> c;
  double ms = 0;
};

// Compiles one input as if it were the file `path` (imports resolve next to it) and checks it.
// `recheck`: compile a second time and require the same diagnostics (determinism).
Outcome evaluate(const std::string& path, const std::string& text, bool recheck) {
  Outcome o;
  auto t0 = std::chrono::steady_clock::now();
  try {
    o.c = compile_text(text, path);
  } catch (const std::exception& e) {
    o.why = fmt::format("threw: {}", e.what());
  } catch (...) {
    o.why = "threw: an exception not derived from std::exception";
  }
  o.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (!o.c) return o;
  o.why = problems(*o.c);
  if (o.why.empty() && recheck) {
    auto again = compile_text(text, path);
    if (again->rendered != o.c->rendered || (again->plan == nullptr) != (o.c->plan == nullptr)) {
      o.why = "not deterministic: a second compile rendered differently";
    }
  }
  if (o.why.empty() && o.ms > kRunawayMs) {
    o.why = fmt::format("runaway: took {:.0f} ms (the limit is {:.0f} ms)", o.ms, kRunawayMs);
  }
  return o;
}

// Greedy delta debugging: drops ever smaller chunks while the problem's category stays.
std::string minimise(const std::string& path, std::string text, const std::string& cat) {
  if (text.size() > kMaxMinimiseBytes || cat == "runaway") return text;
  std::size_t budget = 4000;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(kMinimiseSeconds);
  auto still_fails = [&](const std::string& t) {
    budget = std::chrono::steady_clock::now() > deadline ? 0 : budget - 1;
    return category(evaluate(path, t, false).why) == cat;
  };
  for (std::size_t chunk = std::max<std::size_t>(1, text.size() / 2); budget > 0; chunk = std::max<std::size_t>(1, chunk / 2)) {
    bool progress = true;
    while (progress && budget > 0) {
      progress = false;
      for (std::size_t at = 0; at < text.size() && budget > 0;) {
        std::string cand = text.substr(0, at) + text.substr(std::min(text.size(), at + chunk));
        if (still_fails(cand)) {
          text = std::move(cand);
          progress = true;
        } else {
          at += chunk;
        }
      }
    }
    if (chunk == 1) break;
  }
  return text;
}

void run_one(Stats& st, std::string_view label, const std::string& path, const std::string& text, bool recheck) {
  Outcome o = evaluate(path, text, recheck);
  ++st.inputs;
  st.total_ms += o.ms;
  if (o.c) {
    st.with_errors += o.c->diags.has_errors() ? 1 : 0;
    st.with_plan += o.c->plan ? 1 : 0;
    st.max_errors = std::max(st.max_errors, o.c->diags.error_count());
    st.max_rendered = std::max(st.max_rendered, o.c->rendered.size());
  }
  if (o.ms > kSlowMs) {
    fmt::print("[fuzz] slow input: {:.0f} ms, {} ({} bytes in, {} bytes rendered)\n", o.ms, label, text.size(),
               o.c ? o.c->rendered.size() : 0);
    std::fflush(stdout);
  }
  if (o.ms > st.slowest_ms) {
    st.slowest_ms = o.ms;
    st.slowest_label = std::string(label);
    st.slowest_bytes = text.size();
  }
  if (o.why.empty()) return;
  ++st.failures;
  // One report per kind of problem, with the input and a minimised version of it.
  std::string cat = category(o.why);
  if (!st.reported.insert(cat).second || st.reported.size() > kMaxReportedFailures) return;
  std::string rendered = o.c ? o.c->rendered.substr(0, std::min<std::size_t>(o.c->rendered.size(), 1500)) : "";
  std::string small = minimise(path, text, cat);
  FAIL_CHECK(fmt::format("{}\n  input ({}, {} bytes, compiled as {}; seed {:#x}):\n  {}\n  minimised ({} bytes):\n  {}"
                         "\n  diagnostics (first 1500 bytes):\n{}",
                         o.why, label, text.size(), path, fuzz_seed(), escape(text, 1500), small.size(),
                         escape(small), rendered));
}

// ---------------------------------------------------------------------------------------------
// The corpus and the mutator.

struct Seed {
  std::string path;
  std::string text;
};

std::vector<Seed> corpus(std::initializer_list<const char*> dirs = {"graphs", "graphs/common"}) {
  std::vector<Seed> out;
  for (const char* dir : dirs) {
    for (const auto& p : list_files(dir, ".graph")) out.push_back({p, read_text(p)});
  }
  return out;
}

// Bytes a mutant is likely to get wrong.
constexpr std::string_view kBytes =
    std::string_view("\0\xff\"\\{}()[]<>\n\r\t #,;:.=-?_09eaZ \x80\xc3\xe2\xf0\x7f\x01\x0b", 37);

// Tokens, and fragments that hit edges of the lexer, parser and checker.
const std::vector<std::string>& fragments() {
  static const std::vector<std::string> f = {
      "model", "endpoint", "import", "on", "def", "return", "with", "all", "first", "quorum", "each", "in",
      "sequential", "concurrent", "switch", "else", "true", "false", "none", "->", "=>", "=", ":", ",", ";", ".",
      "?", "-", "{", "}", "(", ")", "[", "]", "<", ">", "==", "!=", "<=", ">=", "!", " < 1 < ", "x >= 0.5",
      "\"a\" == none", "switch x > 1 {", "and", "or", "not", "not not x", "a or b and not c", "str", "int", "float", "bool", "list<", "tensor",
      "tensor<f32, [?]>", "tensor<f99, [?, 3]>", "list<str>?", "{a: str, a: int}", "\"\"", "\"\\q\"",
      "\"unterminated", "\"\\", "\"a\\\"b\"", "\"\\0\"", "1e999", "1e-999", "99999999999999999999",
      "9223372036854775807", "-9223372036854775808", "9223372036854775808", "1_", "1__0", "_1", "0.", "1.5e",
      "1e+", "0x10", "9.3e18ns", "9223372036854775807h", "18446744073709551616s", "20s", "1.5ms", "4GiB",
      "0ms", "-1", "-0", "1xyz", "2Kib", "cuda", "cuda:", "cuda:99999", "cuda:-1", "cuda:x", "cpu:0", "gpu",
      "x = ", "y = x", "_", "_x = 1", "a.b.c", "f()", "[0]", "x[\"a\"]", "x.y.z(1)", "(x)", "((x))",
      "with { timeout = 1s, retries = 2, fallback = x }", "with { timeout = 0s }", "with { retries = -1 }",
      "with { fallback = 1 }", "with { bogus = 1 }", "# comment\n", "#", "\n", "\r\n",
      "gpt2.generate(x)", "bert.classify(x)", "gpt2.generate", "gpt2(x)", "gtp2.generate(x)",
      "zip(a: x)", "zip(x)", "zip(a: x, a: x)", "mean([1, 2])", "mean([1, \"a\"])", "topk(", "len()",
      "len(xs: x, xs: x)", "concat([1])", "join(x, sep: \",\")", "argmax(x)", "softmax(1)", "id(x, x)",
      "all { }", "all { a: x, x }", "first { a: x }", "quorum(0) { x }", "quorum(99999999999) { x }",
      "quorum(4294967297) { x, x }", "each i in x { i }", "each i in 1 { i }", "each i in x concurrent(0) { i }",
      "each i in x concurrent(4294967297) { i }", "each x in x { x }", "switch x { else => 1 }",
      "switch x { \"a\" => 1 \"a\" => 2 }", "switch x { }", "switch 1.5 { 1 => 2 }", "switch x { true => 1 }",
      "+", "*", "/", "a + b * -c", "- - x", "1 / 0", "x - -1", "-x.y", "1 +", "* 2", "9223372036854775807 + 1",
      "0.5 * x + (1 - 0.5) * y", "-1 => x", "switch x { 1 => 2 -1 => 3 else => 4 }",
      "split", "by", "split {", "split by x {", "split by {", "split { 0 => x }", "split { 1 => x, 4294967296 => x }",
      "split by x { 1 => x 1 => 2 }", "split by 1.5 { 1 => x }", "split { else => x }", "split by by { 1 => by }",
      "threads = 4294967296", "instances = 0", "max_memory = 4GiB", "batch_window = 1s", "timeout = 1",
      "import \"common/text_models.graph\"\n", "import \"map.graph\"\n", "import \"joins.graph\"\n",
      "import \"\"\n", "import \"/\"\n", "import \"nonexistent.graph\"\n", "import \"a\\nb\"\n",
      "import \"common\"\n", "import \"../graphs/routing.graph\"\n", "model m = torch \"m.pt\" on cpu { def f(x: str) -> str }\n",
      "endpoint e(x: str) -> str { return x }\n", "def f() -> str", "x: str = 1", "-> list<{a: str}>",
  };
  return f;
}

class Mutator {
 public:
  Mutator(std::mt19937_64& rng, const std::vector<Seed>& seeds) : rng_(rng), seeds_(seeds) {
    for (const auto& s : seeds) {
      for (auto& t : tokens(s.text)) pool_.emplace_back(t);
    }
  }

  std::size_t pick(std::size_t n) { return n == 0 ? 0 : std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_); }
  bool coin(unsigned one_in) { return pick(one_in) == 0; }

  // One to eight stacked mutations.
  std::string mutate(std::string s) {
    std::size_t n = coin(2) ? 1 : 2 + pick(7);
    for (std::size_t i = 0; i < n; ++i) s = once(std::move(s));
    return s;
  }

  std::string random_bytes() {
    std::string s(pick(coin(8) ? 4096 : 512), '\0');
    if (coin(2)) {
      for (auto& c : s) c = static_cast<char>(pick(256));
    } else {
      // Token soup: gets further into the parser than noise does.
      s.clear();
      std::size_t n = pick(200);
      for (std::size_t i = 0; i < n; ++i) {
        s += coin(3) ? pool_[pick(pool_.size())] : fragments()[pick(fragments().size())];
        if (coin(2)) s += coin(4) ? "\n" : " ";
      }
    }
    return s;
  }

 private:
  // Rough tokens: identifier runs, blank runs, single other bytes; strings and comments whole.
  static std::vector<std::string_view> tokens(std::string_view s) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
    while (i < s.size()) {
      std::size_t j = i + 1;
      if (word(s[i])) {
        while (j < s.size() && word(s[j])) ++j;
      } else if (s[i] == ' ' || s[i] == '\n') {
        while (j < s.size() && (s[j] == ' ' || s[j] == '\n')) ++j;
      } else if (s[i] == '"') {
        while (j < s.size() && s[j] != '"' && s[j] != '\n') ++j;
        if (j < s.size() && s[j] == '"') ++j;
      } else if (s[i] == '#') {
        while (j < s.size() && s[j] != '\n') ++j;
      } else if ((s[i] == '-' || s[i] == '=') && j < s.size() && s[j] == '>') {
        ++j;
      }
      out.push_back(s.substr(i, j - i));
      i = j;
    }
    return out;
  }

  static std::vector<std::string> lines(const std::string& s) {
    std::vector<std::string> out;
    std::size_t b = 0;
    while (b <= s.size()) {
      std::size_t e = s.find('\n', b);
      if (e == std::string::npos) {
        out.push_back(s.substr(b));
        break;
      }
      out.push_back(s.substr(b, e - b));
      b = e + 1;
    }
    return out;
  }
  static std::string join(const std::vector<std::string>& ls) {
    std::string out;
    for (std::size_t i = 0; i < ls.size(); ++i) out += (i ? "\n" : "") + ls[i];
    return out;
  }
  template <typename T>
  static std::string join_tokens(const std::vector<T>& ts) {
    std::string out;
    for (const auto& t : ts) out += t;
    return out;
  }

  char random_byte() { return coin(2) ? kBytes[pick(kBytes.size())] : static_cast<char>(pick(256)); }

  std::string once(std::string s) {
    const std::size_t n = s.size();
    switch (pick(14)) {
      case 0:  // truncate
        s.resize(pick(n + 1));
        break;
      case 1: {  // delete a byte or a range
        if (n == 0) break;
        std::size_t at = pick(n);
        s.erase(at, coin(2) ? 1 : 1 + pick(coin(4) ? 64 : 8));
        break;
      }
      case 2: {  // insert bytes
        std::string ins;
        for (std::size_t k = 1 + (coin(2) ? 0 : pick(8)); k > 0; --k) ins.push_back(random_byte());
        s.insert(pick(n + 1), ins);
        break;
      }
      case 3:  // insert a fragment
        s.insert(pick(n + 1), (coin(2) ? " " : "") + fragments()[pick(fragments().size())] + (coin(2) ? " " : ""));
        break;
      case 4: {  // swap adjacent bytes
        if (n < 2) break;
        std::size_t at = pick(n - 1);
        std::swap(s[at], s[at + 1]);
        break;
      }
      case 5: {  // replace a byte or flip a bit
        if (n == 0) break;
        std::size_t at = pick(n);
        if (coin(2)) {
          s[at] = random_byte();
        } else {
          s[at] = static_cast<char>(s[at] ^ (1 << pick(8)));
        }
        break;
      }
      case 6: {  // duplicate a line
        auto ls = lines(s);
        std::size_t i = pick(ls.size());
        ls.insert(ls.begin() + static_cast<std::ptrdiff_t>(pick(ls.size() + 1)), ls[i]);
        s = join(ls);
        break;
      }
      case 7: {  // delete a line
        auto ls = lines(s);
        if (ls.size() < 2) break;
        ls.erase(ls.begin() + static_cast<std::ptrdiff_t>(pick(ls.size())));
        s = join(ls);
        break;
      }
      case 8: {  // swap two lines
        auto ls = lines(s);
        std::swap(ls[pick(ls.size())], ls[pick(ls.size())]);
        s = join(ls);
        break;
      }
      case 9: {  // delete or duplicate a token
        auto ts = tokens(s);
        if (ts.empty()) break;
        std::size_t i = pick(ts.size());
        if (coin(2)) {
          ts.erase(ts.begin() + static_cast<std::ptrdiff_t>(i));
        } else {
          ts.insert(ts.begin() + static_cast<std::ptrdiff_t>(i), ts[i]);
        }
        s = join_tokens(ts);
        break;
      }
      case 10: {  // swap two tokens
        auto ts = tokens(s);
        if (ts.empty()) break;
        std::swap(ts[pick(ts.size())], ts[pick(ts.size())]);
        s = join_tokens(ts);
        break;
      }
      case 11: {  // replace a token with one from any example graph
        auto ts = tokens(s);
        if (ts.empty()) break;
        std::vector<std::string> out(ts.begin(), ts.end());
        out[pick(out.size())] = pool_[pick(pool_.size())];
        s = join_tokens(out);
        break;
      }
      case 12: {  // splice: this file's head, another file's tail
        const std::string& other = seeds_[pick(seeds_.size())].text;
        s = s.substr(0, pick(n + 1)) + other.substr(pick(other.size() + 1));
        break;
      }
      default: {  // copy a slice elsewhere
        if (n == 0) break;
        std::size_t b = pick(n);
        std::string slice = s.substr(b, 1 + pick(std::min<std::size_t>(n - b, 200)));
        s.insert(pick(n + 1), slice);
        break;
      }
    }
    return s;
  }

  std::mt19937_64& rng_;
  const std::vector<Seed>& seeds_;
  std::vector<std::string> pool_;
};

std::string repeat(std::string_view s, std::size_t n) {
  std::string out;
  out.reserve(s.size() * n);
  for (std::size_t i = 0; i < n; ++i) out += s;
  return out;
}

// A valid graph around one expression of an endpoint body.
std::string in_body(const std::string& expr, const std::string& lets = {}) {
  return "model m = torch \"m.pt\" on cpu {\n  def f(x: str) -> str\n}\n"
         "endpoint e(x: str, xs: list<str>) -> str {\n" +
         lets + "  return " + expr + "\n}\n";
}

}  // namespace
}  // namespace braid::test

#pragma GCC diagnostic pop
