// Robustness of the .graph front end against hostile input: thousands of mutated versions of
// every example graph (truncated, bytes deleted, inserted, swapped, lines and tokens shuffled,
// files spliced), random byte strings and pathological inputs (10k open brackets, 100k-deep
// field chains, megabyte identifiers and strings, huge numbers, every byte value).
//
// For every input: the process survives, the plan is null exactly when there are errors, every
// diagnostic is well formed (check_well_formed: compiler format, spans inside the file), the
// error count stays bounded by the limit, the rendering is not empty when there are errors,
// the result is deterministic, and no single input takes longer than kRunawayMs. A failure
// prints the offending input escaped as a C string, with the seed, so that it can be replayed.
//
//   BRAID_FUZZ_SEED=12345 BRAID_FUZZ_ITERS=50000 build/tests/dsl_tests --test-suite=fuzz
//
// BRAID_FUZZ_SEED (decimal or 0x hex) overrides the fixed seed; BRAID_FUZZ_ITERS the number of
// random mutants (spread over the example graphs) and of random byte strings.
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

namespace braid::test {
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
      "?", "-", "{", "}", "(", ")", "[", "]", "<", ">", "str", "int", "float", "bool", "list<", "tensor",
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

TEST_SUITE("fuzz") {
  TEST_CASE("the example graphs compile clean (the mutants' starting point)") {
    auto seeds = corpus();
    REQUIRE(seeds.size() >= 8);
    for (const auto& s : seeds) {
      CAPTURE(s.path);
      auto c = compile_text(s.text, s.path);
      CHECK(c->plan != nullptr);
      CHECK(c->rendered == "");
    }
  }

  TEST_CASE("every truncation of every example graph") {
    auto seeds = corpus();
    Stats st;
    std::mt19937_64 rng(fuzz_seed() ^ 1);
    for (const auto& s : seeds) {
      // Every line and token boundary, and a random sample of the other cut points.
      for (std::size_t cut = 0; cut <= s.text.size(); ++cut) {
        char prev = cut ? s.text[cut - 1] : ' ';
        bool boundary = prev == ' ' || prev == '\n' || prev == '(' || prev == '{' || prev == '"' || prev == ',' ||
                        prev == '.' || prev == '<' || prev == '>' || prev == ':' || prev == '=';
        if (!boundary && rng() % 4 != 0) continue;
        run_one(st, fmt::format("{} cut at {}", s.path, cut), s.path, s.text.substr(0, cut), cut % 64 == 0);
      }
    }
    st.print("truncations");
    CHECK(st.failures == 0);
    CHECK(st.inputs >= 1000);
  }

  TEST_CASE("mutated example graphs") {
    auto seeds = corpus();
    REQUIRE(!seeds.empty());
    std::mt19937_64 rng(fuzz_seed());
    Mutator mut(rng, seeds);
    Stats st;
    const std::size_t iters = fuzz_iters();
    for (std::size_t i = 0; i < iters; ++i) {
      const Seed& s = seeds[i % seeds.size()];
      std::string text = mut.mutate(s.text);
      run_one(st, fmt::format("mutant {} of {}", i, s.path), s.path, text, i % 32 == 0);
    }
    st.print("mutants");
    CHECK(st.failures == 0);
  }

  TEST_CASE("mutated failure cases") {
    // The failure cases reach the checker's error paths the example graphs do not.
    auto seeds = corpus({"tests/dsl/fail"});
    if (seeds.empty()) {
      MESSAGE("no tests/dsl/fail/*.graph (run from the source root)");
      return;
    }
    std::mt19937_64 rng(fuzz_seed() ^ 3);
    Mutator mut(rng, seeds);
    Stats st;
    const std::size_t n = std::max<std::size_t>(1, fuzz_iters() / 4);
    for (std::size_t i = 0; i < n; ++i) {
      const Seed& s = seeds[i % seeds.size()];
      run_one(st, fmt::format("mutant {} of {}", i, s.path), s.path, mut.mutate(s.text), i % 32 == 0);
    }
    st.print("failure-case mutants");
    CHECK(st.failures == 0);
  }

  TEST_CASE("random byte strings and token soup") {
    auto seeds = corpus();
    std::mt19937_64 rng(fuzz_seed() ^ 2);
    Mutator mut(rng, seeds);
    Stats st;
    const std::size_t n = std::max<std::size_t>(1, fuzz_iters() / 4);
    for (std::size_t i = 0; i < n; ++i) {
      run_one(st, fmt::format("random string {}", i), "graphs/fuzz.graph", mut.random_bytes(), i % 32 == 0);
    }
    st.print("random strings");
    CHECK(st.failures == 0);
  }

  TEST_CASE("every byte value, alone and in every position kind") {
    Stats st;
    std::string all;
    for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
    run_one(st, "bytes 0..255", "graphs/fuzz.graph", all, true);
    std::string rev(all.rbegin(), all.rend());
    run_one(st, "bytes 255..0", "graphs/fuzz.graph", rev, true);
    run_one(st, "bytes 0..255 in a string", "graphs/fuzz.graph", in_body("\"" + all + "\""), true);
    for (int b = 0; b < 256; ++b) {
      std::string c(1, static_cast<char>(b));
      run_one(st, fmt::format("byte {:#04x} alone", b), "graphs/fuzz.graph", c, false);
      run_one(st, fmt::format("byte {:#04x} in a string", b), "graphs/fuzz.graph", in_body("\"a" + c + "b\""), false);
      run_one(st, fmt::format("byte {:#04x} escaped in a string", b), "graphs/fuzz.graph", in_body("\"a\\" + c + "b\""),
              false);
      run_one(st, fmt::format("byte {:#04x} in a comment", b), "graphs/fuzz.graph", in_body("x # a" + c + "b"), false);
      run_one(st, fmt::format("byte {:#04x} in an expression", b), "graphs/fuzz.graph", in_body("x" + c + "x"), false);
      run_one(st, fmt::format("byte {:#04x} in an import", b), "graphs/fuzz.graph",
              "import \"common/" + c + "\"\n" + in_body("x"), false);
      run_one(st, fmt::format("byte {:#04x} after a number", b), "graphs/fuzz.graph", in_body("f(1" + c + ")"), false);
    }
    st.print("byte values");
    CHECK(st.failures == 0);
  }

  TEST_CASE("pathological inputs") {
    Stats st;
    const std::string p = "graphs/fuzz.graph";
    auto run = [&](std::string_view label, const std::string& text) { run_one(st, label, p, text, false); };

    // Empty and almost empty.
    run("empty", "");
    run("blanks", repeat(" \t\r\n\f\v", 1000));
    run("a comment without a newline", "# just a comment");
    run("a UTF-8 byte order mark", "\xef\xbb\xbf" + in_body("x"));
    run("NUL bytes", std::string(10000, '\0'));
    run("0xff bytes", std::string(10000, '\xff'));
    run("UTF-8 continuation bytes", std::string(10000, '\x80'));
    run("UTF-8 lead bytes", std::string(10000, '\xf0'));
    run("CR line ends", "\r\r\r" + std::string("endpoint e(x: str) -> int {\r  return x\r}\r"));

    // 10k openers and closers, bare and inside a body or a type.
    for (std::string_view o : {"(", "[", "{", "<", ")", "]", "}", ">", "\"", "{a: ", "f(", "all { ", "[1, ",
                               "each i in xs { ", "switch x { \"a\" => ", "x = ", "-", "->", "=>", "?", ".", ","}) {
      run(fmt::format("10k `{}` alone", o), repeat(o, 10000));
      run(fmt::format("10k `{}` in a body", o), in_body(repeat(o, 10000) + "x"));
      run(fmt::format("10k `{}` on separate lines in a body", o), in_body(repeat(std::string(o) + "\n", 10000) + "x"));
    }
    run("10k parentheses, balanced", in_body(repeat("(", 10000) + "x" + repeat(")", 10000)));
    run("199 parentheses, balanced", in_body(repeat("(", 199) + "x" + repeat(")", 199)));
    run("10k brackets, balanced", in_body(repeat("[", 10000) + repeat("]", 10000)));
    run("10k nested all", in_body(repeat("all { ", 10000) + "x" + repeat(" }", 10000)));
    run("10k nested each", in_body(repeat("each i in xs {\n", 10000) + "x" + repeat("\n}", 10000)));
    run("150 nested each (under the depth limit)", in_body(repeat("each i in xs { ", 150) + "x" + repeat(" }", 150)));
    run("10k nested list types",
        "endpoint e(x: " + repeat("list<", 10000) + "str" + repeat(">", 10000) + ") -> str { return \"\" }\n");
    run("10k nested record types",
        "endpoint e(x: " + repeat("{a: ", 10000) + "str" + repeat("}", 10000) + ") -> str { return \"\" }\n");
    run("100k `?` on a type", "endpoint e(x: str" + repeat("?", 100000) + ") -> str { return \"\" }\n");
    run("150 nested list types",
        "endpoint e(x: " + repeat("list<", 150) + "str" + repeat(">", 150) + ") -> str { return x }\n");
    run("150 nested record types, returned wrongly",
        "endpoint e(x: " + repeat("{a: ", 150) + "str" + repeat("}", 150) + ") -> int { return x }\n");
    run("10k nested blocks in a model", "model m = torch \"m.pt\" on cpu " + repeat("{ ", 10000));

    // Long postfix chains.
    run("100k-deep field chain", in_body("x" + repeat(".b", 100000)));
    run("100k-deep field chain as a let", in_body("y", "  y = a" + repeat(".b", 100000) + "\n"));
    run("100k-deep field chain over lines", in_body("x" + repeat("\n.b", 100000)));
    run("100k-deep index chain", in_body("x" + repeat("[0]", 100000)));
    run("100k-deep call chain", in_body("m.f(x)" + repeat("(x)", 100000)));
    run("100k dots", in_body("x" + repeat(".", 100000)));
    run("199-deep field chain", in_body("x" + repeat(".b", 199)));
    run("100k-deep chain at top level", "a" + repeat(".b", 100000));

    // Very long names and strings.
    const std::string ident(1 << 20, 'a');
    run("1 MiB identifier alone", ident);
    run("1 MiB identifier as a name", in_body(ident));
    run("1 MiB identifier as a model", "model " + ident + " = torch \"m.pt\" { def f() -> str }\n");
    run("1 MiB identifier as an option", "model m = torch \"m.pt\" { " + ident + " = 1 }\n");
    run("1 MiB identifier as a let", in_body("x", "  " + ident + " = x\n"));
    run("1 MiB identifier as a type", "endpoint e(x: " + ident + ") -> str { return \"\" }\n");
    run("1 MiB identifier as a field", in_body("{a: x}." + ident));
    run("1 MiB identifier as a method", in_body("m." + ident + "(x)"));
    // A misspelt long name: the "did you mean" search must not blow up.
    run("1 MiB identifier, misspelt", in_body("m.f(" + ident + ")", "  " + ident + "b = x\n"));
    run("1 MiB string", in_body("\"" + std::string(1 << 20, 's') + "\""));
    run("1 MiB unterminated string", in_body("\"" + std::string(1 << 20, 's')));
    run("1 MiB string of escapes", in_body("\"" + repeat("\\n\\t\\\"\\\\\\0", 100000) + "\""));
    run("10k bad escapes", in_body("\"" + repeat("\\q", 10000) + "\""));
    run("1 MiB model path", "model m = torch \"" + std::string(1 << 20, 'p') + "\" on cpu { def f(x: str) -> str }\n");
    run("1 MiB import path", "import \"" + std::string(1 << 20, 'p') + "\"\n");
    run("1 MiB comment", "#" + std::string(1 << 20, 'c') + "\n" + in_body("x"));
    run("100k lines", repeat("\n", 100000) + in_body("x"));
    run("256 KiB line of stray characters", std::string(256 << 10, '@'));
    run("a 256 KiB line with an error every 1000 bytes", repeat(std::string(999, ' ') + "@", 256));

    // Huge and odd numbers everywhere a number may go.
    for (const std::string& n : std::vector<std::string>{
             "99999999999999999999999999999", "9223372036854775807", "9223372036854775808", "18446744073709551615",
             "18446744073709551616", "-9223372036854775808", "1e308", "1e309", "1e-400", "1" + std::string(400, '0'),
             "1" + std::string(100000, '0'), "0." + std::string(100000, '0') + "1", "1" + repeat("_0", 10000), "1_",
             "1__0", "00000", "4294967296", "4294967297", "2147483648", "0", "-1", "1.5", "9.2e18", "9.3e18"}) {
      run(fmt::format("number {:.40} as a value", n), in_body("f(" + n + ")"));
      run(fmt::format("number {:.40} as a switch case", n), in_body("switch 1 { " + n + " => x else => x }"));
      run(fmt::format("number {:.40} as a quorum", n), in_body("quorum(" + n + ") { m.f(x), m.f(x) }[0]"));
      run(fmt::format("number {:.40} as a concurrency", n),
          in_body("join(each i in xs concurrent(" + n + ") { m.f(i) }, sep: \"\")"));
      run(fmt::format("number {:.40} as a tensor dimension", n),
          "endpoint e(x: tensor<f32, [" + n + ", ?]>) -> int { return argmax(x) }\n");
      run(fmt::format("number {:.40} as a device", n),
          "model m = torch \"m.pt\" on cuda:" + n + " { def f(x: str) -> str }\n" +
              "endpoint e(x: str) -> str { return m.f(x) }\n");
      for (const char* unit : {"ns", "ms", "s", "m", "h", "B", "GiB", "KB", "xs"}) {
        run(fmt::format("number {:.40}{} as an option", n, unit),
            "model m = torch \"m.pt\" on cpu { timeout = " + n + unit + ", max_memory = " + n + unit +
                ", threads = " + n + " def f(x: str) -> str }\nendpoint e(x: str) -> str { return m.f(x) with { "
                "timeout = " + n + unit + ", backoff = " + n + unit + ", retries = " + n + " } }\n");
      }
    }

    // Many of everything (the scaling test below checks that cost stays linear in these).
    run("100k stray characters", repeat("@", 100000));
    run("100k lines of stray characters", repeat("@\n", 100000));
    run("10k duplicate endpoints", repeat("endpoint e(x: str) -> str { return x }\n", 10000));
    run("10k duplicate models", repeat("model m = torch \"m.pt\" on cpu { def f(x: str) -> str }\n", 10000));
    run("10k broken models", repeat("model m = pytorch \"m.pt\" on tpu { bogus = 1s }\n", 10000));
    run("10k unused lets", in_body("x", [] {
          std::string s;
          for (int i = 0; i < 10000; ++i) s += fmt::format("  y{} = m.f(x)\n", i);
          return s;
        }()));
    run("a 10k-let dependency chain", in_body("y9999", [] {
          std::string s = "  y0 = m.f(x)\n";
          for (int i = 1; i < 10000; ++i) s += fmt::format("  y{} = m.f(y{})\n", i, i - 1);
          return s;
        }()));
    run("a 10k-let cycle", in_body("y0", [] {
          std::string s;
          for (int i = 0; i < 10000; ++i) s += fmt::format("  y{} = m.f(y{})\n", i, (i + 1) % 10000);
          return s;
        }()));
    run("10k lets in 5k two-cycles", in_body("x", [] {
          std::string s;
          for (int i = 0; i < 10000; i += 2) s += fmt::format("  a{} = m.f(a{})\n  a{} = m.f(a{})\n", i, i + 1, i + 1, i);
          return s;
        }()));
    run("10k unknown names", in_body("x", repeat("  y = nope\n", 10000)));
    run("10k-element list", in_body("join([" + repeat("\"a\",\n", 10000) + "], sep: \"\")"));
    run("10k-branch group", in_body("join(all {\n" + repeat("m.f(x),\n", 10000) + "}, sep: \"\")"));
    run("10k duplicate record fields", in_body("{\n" + repeat("a: x,\n", 10000) + "}.a"));
    run("10k duplicate switch arms", in_body("switch x {\n" + repeat("\"a\" => x\n", 10000) + "else => x }"));
    run("10k methods", "model m = torch \"m.pt\" {\n" + [] {
          std::string s;
          for (int i = 0; i < 10000; ++i) s += fmt::format("  def f{}(x: str) -> str\n", i);
          return s;
        }() + "}\nendpoint e(x: str) -> str { return m.f9999(x) }\n");
    run("10k arguments", in_body("m.f(\n" + repeat("x,\n", 10000) + ")"));
    run("10k with options", in_body("m.f(x) with {\n" + repeat("timeout = 1s,\n", 10000) + "}"));
    run("10k fallbacks", in_body(repeat("m.f(x) with { fallback = ", 10000) + "x" + repeat(" }", 10000)));
    run("1k unused parameters on one line", "endpoint e(" + [] {
          std::string s;
          for (int i = 0; i < 1000; ++i) s += fmt::format("p{}: str, ", i);
          return s;
        }() + ") -> str { return p0 }\n");
    run("self import", "import \"fuzz.graph\"\n" + in_body("x"));
    run("10k imports", repeat("import \"common/text_models.graph\"\n", 10000) + in_body("gpt2.generate(x)"));
    run("1k missing imports", repeat("import \"missing.graph\"\n", 1000) + in_body("x"));
    run("import of a directory", "import \"common\"\n" + in_body("x"));
    run("import path with a newline", "import \"a\\nb\"\n" + in_body("x"));
    run("import path with control bytes", "import \"\\0\\t\\r\"\n" + in_body("x"));

    st.print("pathological");
    CHECK(st.failures == 0);
  }

  TEST_CASE("a number is either rejected or reaches the plan unchanged") {
    // A limit that does not fit the plan's field must be an error, not wrap around
    // (concurrent(4294967297) must not turn into `sequential`).
    for (std::uint64_t n : {1ull, 4ull, 65535ull, 65536ull, 2147483647ull, 2147483648ull, 4294967295ull, 4294967296ull,
                            4294967297ull, 9223372036854775807ull}) {
      CAPTURE(n);
      auto c = compile_text(in_body(fmt::format("join(each i in xs concurrent({}) {{ m.f(i) }}, sep: \"\")", n)),
                            "graphs/fuzz.graph");
      REQUIRE(problems(*c) == "");
      if (!c->plan) continue;
      bool found = false;
      for (const auto& node : c->plan->endpoints.at(0).nodes) {
        if (const auto* map = std::get_if<plan::MapNode>(&node.kind)) {
          found = true;
          CHECK_MESSAGE(map->concurrency == n, fmt::format("concurrent({}) compiled to concurrency {}{}", n, map->concurrency,
                                                           map->concurrency == 1 ? " (sequential)" : map->concurrency == 0 ? " (unlimited)" : ""));
        }
      }
      CHECK(found);
    }
  }

  // Cost must grow linearly with the size of the input: for each shape, compile it at n and 4n
  // and compare the time (the best of three) and the size of the rendered diagnostics.
  TEST_CASE("cost grows linearly with the input") {
    struct Shape {
      std::string_view name;
      std::size_t n;
      std::string (*make)(std::size_t n);
    };
    const Shape shapes[] = {
        {"lets in a dependency chain", 2000,
         [](std::size_t n) {
           std::string s = "  y0 = m.f(x)\n";
           for (std::size_t i = 1; i < n; ++i) s += fmt::format("  y{} = m.f(y{})\n", i, i - 1);
           return in_body(fmt::format("y{}", n - 1), s);
         }},
        {"unused lets", 2000,
         [](std::size_t n) {
           std::string s;
           for (std::size_t i = 0; i < n; ++i) s += fmt::format("  y{} = m.f(x)\n", i);
           return in_body("x", s);
         }},
        {"endpoints", 1000,
         [](std::size_t n) {
           std::string s = "model m = torch \"m.pt\" on cpu { def f(x: str) -> str }\n";
           for (std::size_t i = 0; i < n; ++i) s += fmt::format("endpoint e{}(x: str) -> str {{ return m.f(x) }}\n", i);
           return s;
         }},
        {"unused parameters on one line", 500,
         [](std::size_t n) {
           std::string s;
           for (std::size_t i = 0; i < n; ++i) s += fmt::format("p{}: str, ", i);
           return "endpoint e(" + s + ") -> str { return p0 }\n";
         }},
        {"fields of a record literal", 1500,
         [](std::size_t n) {
           std::string s;
           for (std::size_t i = 0; i < n; ++i) s += fmt::format("f{}: x,\n", i);
           return in_body("{" + s + "}.f0");
         }},
        {"fields of a record type", 1500,
         [](std::size_t n) {
           std::string s;
           for (std::size_t i = 0; i < n; ++i) s += fmt::format("f{}: str,\n", i);
           return "endpoint e(x: {" + s + "}) -> str { return x.f0 }\n";
         }},
        {"named branches of a group", 2500,
         [](std::size_t n) {
           std::string s;
           for (std::size_t i = 0; i < n; ++i) s += fmt::format("b{}: m.f(x),\n", i);
           return in_body("all {" + s + "}.b0");
         }},
        {"named arguments of zip", 1500,
         [](std::size_t n) {
           std::string s;
           for (std::size_t i = 0; i < n; ++i) s += fmt::format("a{}: xs,\n", i);
           return in_body("zip(" + s + ")[0].a0");
         }},
        {"switch arms", 1500,
         [](std::size_t n) {
           std::string s;
           for (std::size_t i = 0; i < n; ++i) s += fmt::format("\"{}\" => x\n", i);
           return in_body("switch x {" + s + "else => x }");
         }},
        {"list items", 2000,
         [](std::size_t n) { return in_body("join([" + repeat("x,\n", n) + "], sep: \"\")"); }},
        {"bytes of a misspelt name", 300,
         [](std::size_t n) {
           std::string id(n, 'a');
           return in_body("m.f(" + id + ")", "  " + id + "b = x\n");
         }},
        {"errors on one line", 4000, [](std::size_t n) { return repeat("@ ", n); }},
    };
    bool all_linear = true;
    for (const auto& shape : shapes) {
      double t[2] = {};
      std::size_t rendered[2] = {};
      std::size_t bytes[2] = {};
      for (int k = 0; k < 2; ++k) {
        std::string text = shape.make(shape.n << (2 * k));
        bytes[k] = text.size();
        t[k] = 1e300;
        for (int rep = 0; rep < 3; ++rep) {
          auto t0 = std::chrono::steady_clock::now();
          auto c = compile_text(text, "graphs/fuzz.graph");
          t[k] = std::min(t[k], std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
          rendered[k] = c->rendered.size();
          if (t[k] > 500) break;  // already slow: one run is enough
        }
      }
      double time_ratio = t[1] / std::max(t[0], 0.05);
      double out_ratio = static_cast<double>(rendered[1] + 1000) / static_cast<double>(rendered[0] + 1000);
      // Linear is 4; quadratic 16. Allow for noise and for fixed costs.
      bool time_ok = time_ratio < 9 || t[1] < 20;
      bool out_ok = out_ratio < 6;
      fmt::print("[fuzz] scaling {:<32} n={:>5}: {:>8} -> {:>8} bytes, {:>8.1f} -> {:>8.1f} ms (x{:.1f}), rendered {:>9} -> "
                 "{:>10} bytes (x{:.1f}){}\n",
                 shape.name, shape.n, bytes[0], bytes[1], t[0], t[1], time_ratio, rendered[0], rendered[1], out_ratio,
                 time_ok && out_ok ? "" : "  <- superlinear");
      std::fflush(stdout);
      CHECK_MESSAGE(time_ok, fmt::format("compile time grows superlinearly in the number of {}: x{:.1f} for 4x the input "
                                         "({:.1f} ms at n={}, {:.1f} ms at n={})",
                                         shape.name, time_ratio, t[0], shape.n, t[1], shape.n * 4));
      CHECK_MESSAGE(out_ok, fmt::format("rendered diagnostics grow superlinearly in the number of {}: x{:.1f} for 4x the "
                                        "input ({} bytes at n={}, {} bytes at n={})",
                                        shape.name, out_ratio, rendered[0], shape.n, rendered[1], shape.n * 4));
      all_linear = all_linear && time_ok && out_ok;
    }
    CHECK(all_linear);
  }
}

}  // namespace braid::test
