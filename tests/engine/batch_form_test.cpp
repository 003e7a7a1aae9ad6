// The batched form's rule (engine/batch_form.hpp), which the torch backend loads by and `braid
// check` reports by: lists, packed tensors with and without their lengths, rows, and what fits
// none of them.
#include <doctest/doctest.h>

#include "engine/batch_form.hpp"

namespace braid::test {
namespace {

using dsl::Type;

plan::Method method(std::vector<plan::Param> params, dsl::TypeRef result) {
  plan::Method m;
  m.name = "f";
  m.params = std::move(params);
  m.result = std::move(result);
  return m;
}

engine::MethodSchema batch(std::vector<plan::Param> params, dsl::TypeRef result) {
  return {"f_batch", std::move(params), std::move(result)};
}

// A call whose one parameter is an f32 tensor [len, 64] (no data: grouping reads shapes only).
std::vector<engine::Value> call_of(std::int64_t len) {
  engine::Tensor t;
  t.dtype = dsl::DType::F32;
  t.shape = {len, 64};
  return {engine::Value(std::move(t))};
}

}  // namespace

TEST_SUITE("engine") {
  TEST_CASE("batch form: a batch padded past its bound runs in groups by length") {
    engine::BatchForm packed;
    packed.params.push_back({true, true, false});
    auto calls = [](std::initializer_list<std::int64_t> lens) {
      std::vector<std::vector<engine::Value>> c;
      for (auto l : lens) c.push_back(call_of(l));
      return c;
    };
    using Groups = std::vector<std::vector<std::size_t>>;
    // Within the bound: one group, in order (lengths alike; or skewed, but small in all).
    CHECK(engine::pack_groups(packed, calls({10, 10, 10, 10})) == Groups{{0, 1, 2, 3}});
    CHECK(engine::pack_groups(packed, calls({2, 2, 2, 2, 2, 2, 2, 1000})) == Groups{{0, 1, 2, 3, 4, 5, 6, 7}});
    // Padded, [8, 40000, 64] f32 is 80 MiB for 10 MiB of data: the short ones, then the long one.
    CHECK(engine::pack_groups(packed, calls({2, 2, 2, 40000, 2, 2, 2, 2})) == Groups{{0, 1, 2, 4, 5, 6, 7}, {3}});
    // Sorted by length first: the two long calls pack together (2x their data), apart from the short.
    CHECK(engine::pack_groups(packed, calls({300000, 2, 2, 2, 2, 2, 2, 2, 2, 300000})) ==
          Groups{{1, 2, 3, 4, 5, 6, 7, 8}, {0, 9}});
    // Twice the data at most past the floor: one group, though over 64 MiB.
    CHECK(engine::pack_groups(packed, calls({300000, 150000, 300000})) == Groups{{0, 1, 2}});
    // Lists are not padded: one group whatever the lengths.
    engine::BatchForm lists;
    lists.params.push_back({});
    CHECK(engine::pack_groups(lists, calls({2, 300000, 2, 2, 2, 2})) == Groups{{0, 1, 2, 3, 4, 5}});
  }

  TEST_CASE("batch form: lists, packed tensors with or without lengths, rows") {
    const auto t = Type::tensor(dsl::DType::F32, std::vector<std::int64_t>{-1, 64});
    const auto m = method({{"x", t}, {"by", Type::floating()}}, t);

    auto lists = engine::batch_form(m, batch({{"x", Type::list(Type::tensor())}, {"by", Type::list(Type::floating())}},
                                             Type::list(Type::tensor())));
    REQUIRE(lists);
    CHECK_FALSE(lists->params[0].packed);
    CHECK_FALSE(lists->params[1].packed);
    CHECK_FALSE(lists->rows);

    auto packed = engine::batch_form(
        m, batch({{"x", Type::tensor()}, {"x_lengths", Type::tensor()}, {"by", Type::list(Type::floating())}}, Type::tensor()));
    REQUIRE(packed);
    CHECK(packed->params[0].packed);
    CHECK(packed->params[0].lengths);
    CHECK_FALSE(packed->params[1].packed);
    CHECK(packed->rows);

    auto host_lengths = engine::batch_form(
        m, batch({{"x", Type::tensor()}, {"x_lengths", Type::list(Type::integer())}, {"by", Type::list(Type::floating())}},
                 Type::list(Type::tensor())));
    REQUIRE(host_lengths);
    CHECK(host_lengths->params[0].lengths);
    CHECK(host_lengths->params[0].lengths_list);
    CHECK_FALSE(packed->params[0].lengths_list);
    // Lengths as floats are no lengths: then `x_lengths` is one parameter too many.
    CHECK_FALSE(engine::batch_form(
        m, batch({{"x", Type::tensor()}, {"x_lengths", Type::list(Type::floating())}, {"by", Type::list(Type::floating())}},
                 Type::tensor())));

    auto no_lengths = engine::batch_form(m, batch({{"x", Type::tensor()}, {"by", Type::list(Type::floating())}},
                                                  Type::list(Type::tensor())));
    REQUIRE(no_lengths);
    CHECK(no_lengths->params[0].packed);
    CHECK_FALSE(no_lengths->params[0].lengths);
    CHECK_FALSE(no_lengths->rows);
  }

  TEST_CASE("batch form: what fits none of the forms") {
    const auto m = method({{"x", Type::tensor()}, {"text", Type::str()}}, Type::floating());
    // A number is never packed; a str never a tensor; a lengths parameter must be named for its tensor.
    CHECK_FALSE(engine::batch_form(m, batch({{"x", Type::tensor()}, {"text", Type::str()}}, Type::list(Type::floating()))));
    CHECK_FALSE(engine::batch_form(
        m, batch({{"x", Type::tensor()}, {"lengths", Type::tensor()}, {"text", Type::list(Type::str())}},
                 Type::list(Type::floating()))));
    CHECK_FALSE(engine::batch_form(m, batch({{"x", Type::tensor()}}, Type::list(Type::floating()))));
    CHECK_FALSE(engine::batch_form(m, batch({{"x", Type::tensor()}, {"text", Type::list(Type::str())}, {"y", Type::tensor()}},
                                            Type::list(Type::floating()))));
    CHECK(engine::batch_form(m, batch({{"x", Type::tensor()}, {"text", Type::list(Type::str())}}, Type::list(Type::floating()))));
    // Numbers may come back as the rows of one tensor; a str may not.
    auto numbers = engine::batch_form(m, batch({{"x", Type::tensor()}, {"text", Type::list(Type::str())}}, Type::tensor()));
    REQUIRE(numbers);
    CHECK(numbers->rows);
    CHECK_FALSE(engine::batch_form(method({{"x", Type::tensor()}}, Type::str()), batch({{"x", Type::tensor()}}, Type::tensor())));
    // A TorchScript type the DSL lacks (the error type), or an optional list, is no list.
    CHECK_FALSE(engine::batch_form(m, batch({{"x", Type::tensor()}, {"text", Type::error()}}, Type::list(Type::floating()))));
    CHECK_FALSE(engine::batch_form(m, batch({{"x", Type::tensor()}, {"text", Type::list(Type::str())}}, Type::error())));
    CHECK_FALSE(engine::batch_form(
        m, batch({{"x", Type::tensor()}, {"text", Type::optional(Type::list(Type::str()))}}, Type::list(Type::floating()))));
    CHECK_FALSE(engine::batch_form(
        m, batch({{"x", Type::tensor()}, {"text", Type::list(Type::error())}}, Type::list(Type::floating()))));
    // A method whose own parameter is named `<p>_lengths` keeps it: it is not p's lengths.
    const auto own = method({{"x", Type::tensor()}, {"x_lengths", Type::integer()}}, Type::tensor());
    auto f = engine::batch_form(own, batch({{"x", Type::tensor()}, {"x_lengths", Type::list(Type::integer())}}, Type::tensor()));
    REQUIRE(f);
    CHECK(f->params[0].packed);
    CHECK_FALSE(f->params[0].lengths);
    CHECK_FALSE(f->params[1].packed);
    // The message names both forms where a tensor is involved, the list form alone otherwise.
    CHECK(engine::batch_signatures(m) ==
          "`(x: list<tensor>, text: list<str>) -> list<float>` or, packed, "
          "`(x: tensor, x_lengths: tensor, text: list<str>) -> tensor` (each `_lengths` optional, a tensor or a `list<int>`; "
          "the result a list or one tensor of rows)");
    CHECK(engine::batch_signatures(method({{"x", Type::tensor()}}, Type::tensor())) ==
          "`(x: list<tensor>) -> list<tensor>` or, packed, `(x: tensor, x_lengths: tensor) -> tensor` (each `_lengths` "
          "optional, a tensor or a `list<int>`; the result a list or one tensor of rows)");
    CHECK(engine::batch_signatures(method({{"text", Type::str()}}, Type::floating())) ==
          "`(text: list<str>) -> list<float>` or, with the results as the rows of one tensor, `(text: list<str>) -> tensor`");
    CHECK(engine::batch_signatures(method({{"text", Type::str()}}, Type::str())) == "`(text: list<str>) -> list<str>`");
  }
}

}  // namespace braid::test
