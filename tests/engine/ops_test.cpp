// Every built-in op on known inputs, and its errors.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "engine/ops.hpp"

namespace braid::test {
namespace {

using dsl::BuiltinOp;
using engine::Value;

Value floats(std::vector<double> xs) {
  std::vector<Value> v;
  for (double x : xs) v.emplace_back(x);
  return Value::list(std::move(v));
}
Value strs(std::vector<std::string> xs) {
  std::vector<Value> v;
  for (auto& x : xs) v.emplace_back(x);
  return Value::list(std::move(v));
}

engine::Result<Value> op(BuiltinOp o, std::vector<Value> args, std::vector<std::string> names = {}) {
  return engine::run_op(o, args, names);
}

}  // namespace

TEST_SUITE("ops") {
  TEST_CASE("zip pairs lists into records and rejects unequal lengths") {
    auto r = op(BuiltinOp::Zip, {strs({"a", "b"}), floats({1, 2})}, {"text", "score"});
    REQUIRE(r);
    CHECK(*r == Value::list({Value::record({"text", "score"}, {Value("a"), Value(1.0)}),
                             Value::record({"text", "score"}, {Value("b"), Value(2.0)})}));
    auto bad = op(BuiltinOp::Zip, {strs({"a"}), floats({1, 2})}, {"text", "score"});
    REQUIRE(!bad);
    CHECK(bad.error().message == "op `zip`: lists have different lengths (1 and 2)");
  }

  TEST_CASE("comparisons: numbers by value (int against float), strings by bytes, NaN against nothing") {
    const double nan = std::nan("");
    CHECK(*op(BuiltinOp::Less, {Value(1), Value(1.5)}) == Value(true));
    CHECK(*op(BuiltinOp::LessEqual, {Value(2), Value(2.0)}) == Value(true));
    CHECK(*op(BuiltinOp::Greater, {Value(2.0), Value(2)}) == Value(false));
    CHECK(*op(BuiltinOp::GreaterEqual, {Value(-3), Value(-4)}) == Value(true));
    // int64 against int64 exactly, beyond what a double holds
    CHECK(*op(BuiltinOp::Less, {Value(std::int64_t{9007199254740992}), Value(std::int64_t{9007199254740993})}) == Value(true));
    CHECK(*op(BuiltinOp::Less, {Value("apple"), Value("apples")}) == Value(true));
    CHECK(*op(BuiltinOp::Greater, {Value("b"), Value("a\xc3\xa9")}) == Value(true));
    CHECK(*op(BuiltinOp::Less, {Value("z"), Value("\xc3\xa9")}) == Value(true));  // bytes: U+00E9 after `z`
    for (auto o : {BuiltinOp::Less, BuiltinOp::LessEqual, BuiltinOp::Greater, BuiltinOp::GreaterEqual}) {
      CHECK(*op(o, {Value(nan), Value(1.0)}) == Value(false));
      CHECK(*op(o, {Value(1), Value(nan)}) == Value(false));
    }
    CHECK(*op(BuiltinOp::Equal, {Value(nan), Value(nan)}) == Value(false));
    CHECK(*op(BuiltinOp::NotEqual, {Value(nan), Value(nan)}) == Value(true));
  }

  TEST_CASE("arithmetic: ints stay exact ints, checked for overflow; a float makes a float; `/` a float, never by 0") {
    CHECK(*op(BuiltinOp::Add, {Value(2), Value(3)}) == Value(5));
    CHECK(op(BuiltinOp::Add, {Value(2), Value(3)})->kind() == Value::Kind::Int);
    CHECK(*op(BuiltinOp::Subtract, {Value(2), Value(0.5)}) == Value(1.5));
    CHECK(*op(BuiltinOp::Multiply, {Value(0.5), Value(4)}) == Value(2.0));
    CHECK(op(BuiltinOp::Multiply, {Value(0.5), Value(4)})->kind() == Value::Kind::Float);
    CHECK(*op(BuiltinOp::Divide, {Value(7), Value(2)}) == Value(3.5));
    CHECK(*op(BuiltinOp::Negate, {Value(-4)}) == Value(4));
    CHECK(*op(BuiltinOp::Negate, {Value(0.25)}) == Value(-0.25));
    // Exact beyond a double's 53 bits.
    CHECK(*op(BuiltinOp::Add, {Value(std::int64_t{9007199254740992}), Value(1)}) == Value(std::int64_t{9007199254740993}));
    const std::int64_t max = std::numeric_limits<std::int64_t>::max(), min = std::numeric_limits<std::int64_t>::min();
    auto over = op(BuiltinOp::Add, {Value(max), Value(1)});
    REQUIRE(!over);
    CHECK(over.error().message == "op `+`: 9223372036854775807 + 1 overflows int");
    CHECK(!op(BuiltinOp::Subtract, {Value(min), Value(1)}));
    CHECK(!op(BuiltinOp::Multiply, {Value(std::int64_t{1} << 32), Value(std::int64_t{1} << 31)}));
    CHECK(*op(BuiltinOp::Multiply, {Value(std::int64_t{1} << 31), Value(std::int64_t{1} << 31)}) == Value(std::int64_t{1} << 62));
    auto neg = op(BuiltinOp::Negate, {Value(min)});
    REQUIRE(!neg);
    CHECK(neg.error().message == "op `unary -`: -(-9223372036854775808) overflows int");
    for (const Value& zero : {Value(0), Value(0.0), Value(-0.0)}) {
      auto div = op(BuiltinOp::Divide, {Value(1), zero});
      REQUIRE(!div);
      CHECK(div.error().message.starts_with("op `/`: division by zero (1 / "));
    }
    CHECK(!op(BuiltinOp::Add, {Value("a"), Value(1)}));  // the checker keeps strings out; the op says so too
  }

  TEST_CASE("and, or, not") {
    for (bool a : {false, true}) {
      for (bool b : {false, true}) {
        CHECK(*op(BuiltinOp::And, {Value(a), Value(b)}) == Value(a && b));
        CHECK(*op(BuiltinOp::Or, {Value(a), Value(b)}) == Value(a || b));
      }
      CHECK(*op(BuiltinOp::Not, {Value(a)}) == Value(!a));
    }
  }

  TEST_CASE("==: one meaning through lists, records (fields in any order) and none") {
    CHECK(*op(BuiltinOp::Equal, {Value(1), Value(1.0)}) == Value(true));
    CHECK(*op(BuiltinOp::Equal, {floats({1, 2}), Value::list({Value(1), Value(2)})}) == Value(true));
    CHECK(*op(BuiltinOp::Equal, {floats({1, 2}), floats({1, 2, 3})}) == Value(false));
    CHECK(*op(BuiltinOp::Equal, {Value::record({"a", "b"}, {Value(1), Value("x")}),
                                 Value::record({"b", "a"}, {Value("x"), Value(1.0)})}) == Value(true));
    CHECK(*op(BuiltinOp::Equal, {Value::record({"a"}, {Value(1)}), Value::record({"b"}, {Value(1)})}) == Value(false));
    CHECK(*op(BuiltinOp::Equal, {Value(), Value()}) == Value(true));
    CHECK(*op(BuiltinOp::Equal, {Value(), Value("")}) == Value(false));
    CHECK(*op(BuiltinOp::NotEqual, {Value("a"), Value()}) == Value(true));
    CHECK(*op(BuiltinOp::Equal, {Value(true), Value(true)}) == Value(true));
  }

  TEST_CASE("len, concat, join, id") {
    CHECK(*op(BuiltinOp::Len, {strs({"a", "b", "c"})}) == Value(3));
    CHECK(*op(BuiltinOp::Concat, {strs({"a"}), strs({"b", "c"}), strs({})}) == strs({"a", "b", "c"}));
    CHECK(*op(BuiltinOp::Join, {strs({"a", "b", "c"}), Value(", ")}) == Value("a, b, c"));
    CHECK(*op(BuiltinOp::Identity, {Value(7)}) == Value(7));
  }

  TEST_CASE("softmax over a list and a tensor") {
    auto r = op(BuiltinOp::Softmax, {floats({0, std::log(3.0)})});
    REQUIRE(r);
    CHECK(r->as_list()[0].as_float() == doctest::Approx(0.25));
    CHECK(r->as_list()[1].as_float() == doctest::Approx(0.75));
    std::vector<double> data = {1, 1, 1, 1};
    auto t = op(BuiltinOp::Softmax, {Value(engine::Tensor::from_doubles(data, {4}))});
    REQUIRE(t);
    CHECK(t->as_tensor().shape == std::vector<std::int64_t>{4});
    for (double p : t->as_tensor().to_doubles()) CHECK(p == doctest::Approx(0.25));
  }

  TEST_CASE("argmax, topk with labels (ties keep label order)") {
    CHECK(*op(BuiltinOp::Argmax, {floats({0.1, 0.7, 0.2})}) == Value(1));
    auto r = op(BuiltinOp::Topk, {floats({0.2, 0.5, 0.2, 0.1}), strs({"a", "b", "c", "d"}), Value(3)});
    REQUIRE(r);
    CHECK(*r == Value::list({Value::record({"label", "score"}, {Value("b"), Value(0.5)}),
                             Value::record({"label", "score"}, {Value("a"), Value(0.2)}),
                             Value::record({"label", "score"}, {Value("c"), Value(0.2)})}));
    auto many = op(BuiltinOp::Topk, {floats({0.2}), strs({"a"}), Value(5)});
    REQUIRE(many);
    CHECK(many->as_list().size() == 1);
    auto bad = op(BuiltinOp::Topk, {floats({0.2, 0.3}), strs({"a"}), Value(1)});
    REQUIRE(!bad);
    CHECK(bad.error().message == "op `topk`: 2 scores but 1 labels");
    CHECK(!op(BuiltinOp::Argmax, {floats({})}));
  }

  TEST_CASE("mean, sum, max, min; empty lists") {
    CHECK(*op(BuiltinOp::Mean, {floats({1, 2, 6})}) == Value(3.0));
    CHECK(*op(BuiltinOp::Sum, {floats({1, 2, 6})}) == Value(9.0));
    CHECK(*op(BuiltinOp::Max, {floats({1, 9, 6})}) == Value(9.0));
    CHECK(*op(BuiltinOp::Min, {floats({4, 2, 6})}) == Value(2.0));
    CHECK(*op(BuiltinOp::Sum, {floats({})}) == Value(0.0));
    CHECK(!op(BuiltinOp::Mean, {floats({})}));
    CHECK(*op(BuiltinOp::Mean, {Value::list({Value(1), Value(2)})}) == Value(1.5));
  }

  TEST_CASE("pooled_cosine: masked mean, normalised, against each label row; shapes checked") {
    auto t = [](std::vector<double> xs, std::vector<std::int64_t> shape, dsl::DType d = dsl::DType::F32) {
      return Value(engine::Tensor::from_doubles(xs, std::move(shape), d));
    };
    // Two items of three tokens of dim 2. Item 0 counts tokens 0 and 2: mean (2, 0), the x axis.
    // Item 1 counts token 1 only: (3, 3), the diagonal; its other tokens would change it.
    const Value hidden = t({1, 1, 9, 9, 3, -1, /**/ 7, 7, 3, 3, -5, 0}, {2, 3, 2});
    const Value mask = t({1, 0, 1, 0, 1, 0}, {2, 3}, dsl::DType::Bool);
    const Value labels = t({5, 0, 0, 2, -1, -1}, {3, 2});  // x axis, y axis, minus the diagonal
    auto r = op(BuiltinOp::PooledCosine, {hidden, mask, labels});
    REQUIRE_MESSAGE(r, (r ? "" : r.error().describe()));
    CHECK(r->as_tensor().shape == std::vector<std::int64_t>{2, 3});
    CHECK(r->as_tensor().dtype == dsl::DType::F32);
    const auto out = r->as_tensor().to_doubles();
    const double d = std::sqrt(0.5);
    const std::vector<double> want = {1, 0, -d, d, d, -1};
    for (std::size_t i = 0; i < want.size(); ++i) CHECK(out[i] == doctest::Approx(want[i]).epsilon(1e-6));
    // One item as [seq, dim] with a [seq] mask gives [n_labels]; a mask of no token pools to 0.
    auto one = op(BuiltinOp::PooledCosine, {t({1, 1, 9, 9, 3, -1}, {3, 2}), t({1, 0, 1}, {3}, dsl::DType::I64), labels});
    REQUIRE(one);
    CHECK(one->as_tensor().shape == std::vector<std::int64_t>{3});
    CHECK(one->as_tensor().to_doubles()[0] == doctest::Approx(1.0));
    auto none = op(BuiltinOp::PooledCosine, {t({1, 1, 9, 9, 3, -1}, {3, 2}), t({0, 0, 0}, {3}), labels});
    REQUIRE(none);
    CHECK(none->as_tensor().to_doubles() == std::vector<double>{0, 0, 0});

    auto bad_mask = op(BuiltinOp::PooledCosine, {hidden, t({1, 0, 1}, {3}), labels});
    REQUIRE_FALSE(bad_mask);
    CHECK(bad_mask.error().message == "op `pooled_cosine`: mask must be [2, 3] to match hidden [2, 3, 2], found [3]");
    auto bad_labels = op(BuiltinOp::PooledCosine, {hidden, mask, t({1, 2, 3}, {1, 3})});
    REQUIRE_FALSE(bad_labels);
    CHECK(bad_labels.error().message == "op `pooled_cosine`: labels must be [n, 2] to match hidden [2, 3, 2], found [1, 3]");
    auto bad_hidden = op(BuiltinOp::PooledCosine, {t({1, 2}, {2}), mask, labels});
    REQUIRE_FALSE(bad_hidden);
    CHECK(bad_hidden.error().message == "op `pooled_cosine`: hidden must be [batch, seq, dim] or [seq, dim], found [2]");
    // Empty tensors with large dimensions (a few bytes of a request) cannot ask for a huge result.
    auto empty = [](std::vector<std::int64_t> shape) { return Value(engine::Tensor::from_doubles({}, std::move(shape))); };
    auto huge = op(BuiltinOp::PooledCosine, {empty({3, 0, 0}), empty({3, 0}), empty({30'000'000, 0})});
    REQUIRE_FALSE(huge);
    CHECK(huge.error().message == "op `pooled_cosine`: the result would hold 90000000 scores (3 items x 30000000 labels); at most 4194304");
  }

  TEST_CASE("to_tensor and to_list round trip") {
    auto t = op(BuiltinOp::ToTensor, {floats({0.5, 1.5})});
    REQUIRE(t);
    CHECK(t->as_tensor().dtype == dsl::DType::F32);
    CHECK(t->as_tensor().shape == std::vector<std::int64_t>{2});
    CHECK(*op(BuiltinOp::ToList, {*t}) == floats({0.5, 1.5}));
  }
}

}  // namespace braid::test
