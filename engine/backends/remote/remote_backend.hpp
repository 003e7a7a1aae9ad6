#pragma once
// The `remote` backend: a model that is another braid server's graph.
//
//   model ranker = remote "http://10.0.0.7:8000/ranking" {
//     timeout = 2s
//     def rank(query: str, docs: list<str>) -> list<float>
//   }
//
// A call `ranker.rank(q, d)` is `POST /ranking/rank` there with `{"query": q, "docs": d}`; the
// answer is decoded as the declared result type. What is left of the call's deadline travels
// in a `Braid-Timeout` header, so the other server stops when this one would stop waiting.
// `braid check --require-models` (and `braid serve`, which checks the same way) reads that
// server's GET /graphs and checks every declared method against its endpoint.

#include <chrono>
#include <memory>

#include "engine/backend.hpp"

namespace braid::engine {

struct RemoteOptions {
  // A call with no deadline at all (no `timeout` on the model, the node or the endpoint, no
  // Braid-Timeout from the client) gives up after this long; a streaming one, after this long
  // without a byte of its answer, however long the whole stream runs. From 1 ms to 24 h (a
  // value outside is taken as the nearest bound).
  std::chrono::steady_clock::duration patience = std::chrono::seconds(60);
};

std::shared_ptr<Backend> make_remote_backend(RemoteOptions options = {});

}  // namespace braid::engine
