#include "engine/ops.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "dsl/numbers.hpp"
#include "engine/stream.hpp"
#include "kernels/pool_similarity.hpp"
#include "kernels/topk.hpp"

namespace braid::engine {
namespace {

using dsl::BuiltinOp;

Error op_error(std::string_view op, std::string message) {
  return make_error(ErrorCode::ModelError, fmt::format("op `{}`: {}", op, message));
}

// Scores from a float list or a host tensor.
Result<std::vector<double>> scores_of(std::string_view op, const Value& v) {
  if (v.kind() == Value::Kind::Tensor) {
    if (!v.as_tensor().on_host()) return op_error(op, "tensor is not in host memory");
    return v.as_tensor().to_doubles();
  }
  if (v.kind() != Value::Kind::List) return op_error(op, fmt::format("expected a list, found {}", v.kind_name()));
  std::vector<double> out;
  out.reserve(v.as_list().size());
  for (const auto& e : v.as_list()) {
    if (e.kind() != Value::Kind::Float && e.kind() != Value::Kind::Int) return op_error(op, "list element is not a number");
    out.push_back(e.as_float());
  }
  return out;
}

std::vector<double> softmax(const std::vector<double>& x) {
  std::vector<double> out(x.size());
  if (x.empty()) return out;
  double m = *std::max_element(x.begin(), x.end());
  double sum = 0;
  for (std::size_t i = 0; i < x.size(); ++i) sum += out[i] = std::exp(x[i] - m);
  for (auto& o : out) o /= sum;
  return out;
}

Value float_list(const std::vector<double>& xs) {
  std::vector<Value> items;
  items.reserve(xs.size());
  for (double x : xs) items.emplace_back(x);
  return Value::list(std::move(items));
}

}  // namespace

Result<int> topk_count(std::size_t scores, std::span<const Value> args) {
  const auto& labels = args[1].as_list();
  if (labels.size() != scores) return op_error("topk", fmt::format("{} scores but {} labels", scores, labels.size()));
  if (scores > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
    return op_error("topk", fmt::format("{} scores, more than the {} it takes", scores, std::numeric_limits<int>::max()));
  }
  std::int64_t k = args[2].as_int();
  if (k < 0) return op_error("topk", fmt::format("k must not be negative, found {}", k));
  return static_cast<int>(std::min<std::int64_t>(k, static_cast<std::int64_t>(scores)));
}

Value topk_records(const std::vector<Value>& labels, std::span<const std::int32_t> columns,
                   std::span<const double> scores) {
  std::vector<Value> rows;
  rows.reserve(columns.size());
  for (std::size_t i = 0; i < columns.size(); ++i) {
    rows.push_back(Value::record({"label", "score"}, {labels[static_cast<std::size_t>(columns[i])], Value(scores[i])}));
  }
  return Value::list(std::move(rows));
}

std::vector<std::int64_t> PoolShape::result_shape() const {
  if (single) return {n_labels};
  return {batch, n_labels};
}

Result<PoolShape> pooled_cosine_shape(const Tensor& hidden, const Tensor& mask, const Tensor& labels) {
  constexpr std::string_view op = "pooled_cosine";
  auto shape = [](const Tensor& t) { return fmt::format("[{}]", fmt::join(t.shape, ", ")); };
  auto fits = [](std::int64_t n) { return n >= 0 && n <= std::numeric_limits<int>::max(); };
  PoolShape p;
  const auto& h = hidden.shape;
  if (h.size() != 2 && h.size() != 3) {
    return op_error(op, fmt::format("hidden must be [batch, seq, dim] or [seq, dim], found {}", shape(hidden)));
  }
  p.single = h.size() == 2;
  const std::int64_t batch = p.single ? 1 : h[0], seq = h[h.size() - 2], dim = h.back();
  const std::vector<std::int64_t> want_mask = p.single ? std::vector<std::int64_t>{seq} : std::vector<std::int64_t>{batch, seq};
  if (mask.shape != want_mask) {
    return op_error(op, fmt::format("mask must be [{}] to match hidden {}, found {}", fmt::join(want_mask, ", "),
                                    shape(hidden), shape(mask)));
  }
  if (labels.shape.size() != 2 || labels.shape[1] != dim) {
    return op_error(op, fmt::format("labels must be [n, {}] to match hidden {}, found {}", dim, shape(hidden), shape(labels)));
  }
  if (!fits(batch) || !fits(seq) || !fits(dim) || !fits(labels.shape[0]) || !fits(batch * labels.shape[0])) {
    return op_error(op, "a dimension is larger than it takes");
  }
  // Its result is batch x n: small inputs could ask for a huge one (1 MiB of hidden states
  // and as much of labels make 2^36 scores; empty tensors with large dimensions, more).
  if (batch * labels.shape[0] > kMaxPoolScores) {
    return op_error(op, fmt::format("the result would hold {} scores ({} items x {} labels); at most {}", batch * labels.shape[0],
                                    batch, labels.shape[0], kMaxPoolScores));
  }
  p.batch = static_cast<int>(batch);
  p.seq = static_cast<int>(seq);
  p.dim = static_cast<int>(dim);
  p.n_labels = static_cast<int>(labels.shape[0]);
  return p;
}

namespace {

bool is_number(const Value& v) { return v.kind() == Value::Kind::Int || v.kind() == Value::Kind::Float; }

// `==` as a graph means it: numbers by value (`1 == 1.0`; NaN equals nothing, itself included),
// strings byte for byte, bools, none, lists item by item and records field by field (by name:
// a record's fields may come in another order). The checker lets no tensor or stream reach it.
bool values_equal(const Value& a, const Value& b) {
  if (is_number(a) && is_number(b)) {
    if (a.kind() == Value::Kind::Int && b.kind() == Value::Kind::Int) return a.as_int() == b.as_int();
    return a.as_float() == b.as_float();
  }
  if (a.kind() != b.kind()) return false;  // `none` against a value, above all
  switch (a.kind()) {
    case Value::Kind::None: return true;
    case Value::Kind::Bool: return a.as_bool() == b.as_bool();
    case Value::Kind::Str: return a.as_str() == b.as_str();
    case Value::Kind::List: {
      const auto& x = a.as_list();
      const auto& y = b.as_list();
      if (x.size() != y.size()) return false;
      for (std::size_t i = 0; i < x.size(); ++i) {
        if (!values_equal(x[i], y[i])) return false;
      }
      return true;
    }
    case Value::Kind::Record: {
      const auto& r = a.as_record();
      if (r.names.size() != b.as_record().names.size()) return false;
      for (std::size_t i = 0; i < r.names.size(); ++i) {
        const Value* other = b.field(r.names[i]);
        if (!other || !values_equal(r.values[i], *other)) return false;
      }
      return true;
    }
    default: return false;
  }
}

// `<` and the others: numbers by value (an int against a float as floats; NaN is neither below
// nor above anything), strings by their bytes (UTF-8's order is code points').
Result<Value> compare(BuiltinOp op, std::string_view name, const Value& a, const Value& b) {
  int sign = 0;  // a against b
  if (a.kind() == Value::Kind::Str && b.kind() == Value::Kind::Str) {
    const int c = a.as_str().compare(b.as_str());
    sign = c < 0 ? -1 : c > 0 ? 1 : 0;
  } else if (a.kind() == Value::Kind::Int && b.kind() == Value::Kind::Int) {
    sign = a.as_int() < b.as_int() ? -1 : a.as_int() > b.as_int() ? 1 : 0;
  } else if (is_number(a) && is_number(b)) {
    const double x = a.as_float(), y = b.as_float();
    if (std::isnan(x) || std::isnan(y)) return Value(false);
    sign = x < y ? -1 : x > y ? 1 : 0;
  } else {
    return op_error(name, fmt::format("cannot order {} against {}", a.kind_name(), b.kind_name()));
  }
  switch (op) {
    case BuiltinOp::Less: return Value(sign < 0);
    case BuiltinOp::LessEqual: return Value(sign <= 0);
    case BuiltinOp::Greater: return Value(sign > 0);
    default: return Value(sign >= 0);
  }
}

// `+`, `-`, `*`, `/` and `-a`, as dsl/numbers.hpp says (where the checker computes constant
// operands the same way).
Result<Value> arithmetic(BuiltinOp op, std::string_view name, std::span<const Value> args) {
  for (const auto& a : args) {
    if (!is_number(a)) return op_error(name, fmt::format("expected numbers, found {}", a.kind_name()));
  }
  auto number = [](const Value& v) { return v.kind() == Value::Kind::Int ? dsl::Number::of(v.as_int()) : dsl::Number::of(v.as_float()); };
  dsl::Number r;
  if (auto error = dsl::arithmetic(op, number(args[0]), args.size() > 1 ? number(args[1]) : dsl::Number{}, r)) {
    return op_error(name, std::move(*error));
  }
  return r.is_int ? Value(r.i) : Value(r.f);
}

}  // namespace

Result<Value> run_op(BuiltinOp op, std::span<const Value> args, std::span<const std::string> names) {
  std::string_view name = dsl::op_info(op).name;
  switch (op) {
    case BuiltinOp::Identity: return args[0];
    case BuiltinOp::Collect:  // the scheduler waits for the stream's end (run.cpp), then takes its items
      if (args[0].kind() != Value::Kind::Stream) return args[0];
      return Value::list(args[0].as_stream()->items());
    case BuiltinOp::Len: return Value(static_cast<std::int64_t>(args[0].as_list().size()));
    case BuiltinOp::Zip: {
      std::size_t n = args.empty() ? 0 : args[0].as_list().size();
      for (const auto& a : args) {
        if (a.as_list().size() != n) {
          return op_error(name, fmt::format("lists have different lengths ({} and {})", n, a.as_list().size()));
        }
      }
      std::vector<std::string> fields(names.begin(), names.end());
      std::vector<Value> rows;
      rows.reserve(n);
      for (std::size_t i = 0; i < n; ++i) {
        std::vector<Value> vals;
        vals.reserve(args.size());
        for (const auto& a : args) vals.push_back(a.as_list()[i]);
        rows.push_back(Value::record(fields, std::move(vals)));
      }
      return Value::list(std::move(rows));
    }
    case BuiltinOp::Concat: {
      std::vector<Value> out;
      for (const auto& a : args) out.insert(out.end(), a.as_list().begin(), a.as_list().end());
      return Value::list(std::move(out));
    }
    case BuiltinOp::Join: {
      std::string out;
      const auto& xs = args[0].as_list();
      for (std::size_t i = 0; i < xs.size(); ++i) {
        if (i) out += args[1].as_str();
        out += xs[i].as_str();
      }
      return Value(std::move(out));
    }
    case BuiltinOp::Softmax: {
      auto s = scores_of(name, args[0]);
      if (!s) return s.error();
      auto p = softmax(*s);
      if (args[0].kind() == Value::Kind::Tensor) return Value(Tensor::from_doubles(p, args[0].as_tensor().shape, DType::F32));
      return float_list(p);
    }
    case BuiltinOp::Argmax: {
      auto s = scores_of(name, args[0]);
      if (!s) return s.error();
      if (s->empty()) return op_error(name, "empty input");
      return Value(static_cast<std::int64_t>(std::max_element(s->begin(), s->end()) - s->begin()));
    }
    case BuiltinOp::Topk: {
      auto s = scores_of(name, args[0]);
      if (!s) return s.error();
      auto kk = topk_count(s->size(), args);
      if (!kk) return kk.error();
      // The kernel's CPU reference: highest first, NaN above every number, ties by lower index
      // (the CUDA version is the same op on the device).
      const int n = static_cast<int>(s->size());
      std::vector<float> scores(s->begin(), s->end());
      std::vector<std::int32_t> idx(static_cast<std::size_t>(*kk));
      std::vector<float> top(static_cast<std::size_t>(*kk));
      if (*kk > 0) kernels::topk_cpu(scores.data(), 1, n, *kk, idx.data(), top.data());
      std::vector<double> chosen;
      chosen.reserve(idx.size());
      for (std::int32_t i : idx) chosen.push_back((*s)[static_cast<std::size_t>(i)]);
      return topk_records(args[1].as_list(), idx, chosen);
    }
    case BuiltinOp::Mean:
    case BuiltinOp::Sum:
    case BuiltinOp::Max:
    case BuiltinOp::Min: {
      auto s = scores_of(name, args[0]);
      if (!s) return s.error();
      if (s->empty()) {
        if (op == BuiltinOp::Sum) return Value(0.0);
        return op_error(name, "empty list");
      }
      if (op == BuiltinOp::Max) return Value(*std::max_element(s->begin(), s->end()));
      if (op == BuiltinOp::Min) return Value(*std::min_element(s->begin(), s->end()));
      double sum = std::accumulate(s->begin(), s->end(), 0.0);
      return Value(op == BuiltinOp::Sum ? sum : sum / static_cast<double>(s->size()));
    }
    case BuiltinOp::ToTensor: {
      auto s = scores_of(name, args[0]);
      if (!s) return s.error();
      return Value(Tensor::from_doubles(*s, {static_cast<std::int64_t>(s->size())}, DType::F32));
    }
    case BuiltinOp::PooledCosine: {
      const Tensor& hidden = args[0].as_tensor();
      const Tensor& mask = args[1].as_tensor();
      const Tensor& labels = args[2].as_tensor();
      for (const Tensor* t : {&hidden, &mask, &labels}) {
        if (!t->on_host()) return op_error(name, "tensor is not in host memory");
      }
      auto p = pooled_cosine_shape(hidden, mask, labels);
      if (!p) return p.error();
      // The kernel's CPU reference, on F32 copies (any dtype in; the mask by nonzero).
      auto floats = [](const Tensor& t) {
        std::vector<double> d = t.to_doubles();
        return std::vector<float>(d.begin(), d.end());
      };
      const std::vector<float> h = floats(hidden), l = floats(labels);
      std::vector<std::uint8_t> m;
      for (double x : mask.to_doubles()) m.push_back(x != 0 ? 1 : 0);
      std::vector<float> out(static_cast<std::size_t>(p->batch) * static_cast<std::size_t>(p->n_labels));
      kernels::pool_similarity_cpu(h.data(), m.data(), p->batch, p->seq, p->dim, l.data(), p->n_labels, out.data());
      return Value(Tensor::from_doubles(std::vector<double>(out.begin(), out.end()), p->result_shape(), DType::F32));
    }
    case BuiltinOp::ToList: {
      const Tensor& t = args[0].as_tensor();
      if (!t.on_host()) return op_error(name, "tensor is not in host memory");
      return float_list(t.to_doubles());
    }
    case BuiltinOp::Less:
    case BuiltinOp::LessEqual:
    case BuiltinOp::Greater:
    case BuiltinOp::GreaterEqual: return compare(op, name, args[0], args[1]);
    case BuiltinOp::Equal: return Value(values_equal(args[0], args[1]));
    case BuiltinOp::And: return Value(args[0].as_bool() && args[1].as_bool());
    case BuiltinOp::Or: return Value(args[0].as_bool() || args[1].as_bool());
    case BuiltinOp::Not: return Value(!args[0].as_bool());
    case BuiltinOp::NotEqual: return Value(!values_equal(args[0], args[1]));
    case BuiltinOp::Add:
    case BuiltinOp::Subtract:
    case BuiltinOp::Multiply:
    case BuiltinOp::Divide:
    case BuiltinOp::Negate: return arithmetic(op, name, args);
  }
  return op_error(name, "not implemented");
}

}  // namespace braid::engine
