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
#include "tests/dsl/fuzz_support.hpp"

namespace braid::test {

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
}

}  // namespace braid::test
