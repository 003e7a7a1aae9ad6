// Every built-in op on known inputs, and its errors.
#include <doctest/doctest.h>

#include <cmath>

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

  TEST_CASE("to_tensor and to_list round trip") {
    auto t = op(BuiltinOp::ToTensor, {floats({0.5, 1.5})});
    REQUIRE(t);
    CHECK(t->as_tensor().dtype == dsl::DType::F32);
    CHECK(t->as_tensor().shape == std::vector<std::int64_t>{2});
    CHECK(*op(BuiltinOp::ToList, {*t}) == floats({0.5, 1.5}));
  }
}

}  // namespace braid::test
