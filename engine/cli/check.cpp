// braid check and braid plan: the front end, plus a check of every declared method signature
// against the model file's own, when the file is present and its backend is built in.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <sstream>

#include <fmt/format.h>

#include "engine/batch_form.hpp"
#include "engine/cli/commands.hpp"
#include "engine/engine.hpp"
#include "engine/http/openapi.hpp"
#include "engine/json_text.hpp"

namespace braid::cli {
namespace {

std::string plural(std::size_t n, std::string_view word) { return fmt::format("{} {}{}", n, word, n == 1 ? "" : "s"); }

dsl::Span span_at(const dsl::SourceManager& sm, const plan::SourceLoc& loc, std::size_t len) {
  if (loc.file >= sm.size()) return {};
  auto off = sm.file(loc.file).offset(loc.line, loc.col);
  return {loc.file, off, static_cast<std::uint32_t>(off + len)};
}

// The method of a model file named `name` (the last, if several have it), or null.
const engine::MethodSchema* find_schema(const std::vector<engine::MethodSchema>& schemas, std::string_view name) {
  const engine::MethodSchema* s = nullptr;
  for (const auto& x : schemas) {
    if (x.name == name) s = &x;
  }
  return s;
}

// A batched model's method (`max_batch` above 1) runs through the file's `<method>_batch`, in one
// of the forms engine/batch_form.hpp describes.
void verify_batched(const plan::Model& m, const plan::Method& meth, const std::vector<engine::MethodSchema>& schemas,
                    const dsl::Span& where, dsl::Diagnostics& diags) {
  const std::string name = meth.name + "_batch";
  const engine::MethodSchema* s = find_schema(schemas, name);
  if (!s) {
    diags.report(dsl::Diag::model_file_batch_missing, where, m.name, meth.name, m.options.max_batch, m.path, meth.name);
    return;
  }
  if (!engine::batch_form(meth, *s)) {
    diags.report(dsl::Diag::model_file_batch_signature, where, m.name, meth.name, meth.name, engine::batch_signatures(meth),
                 engine::signature_text(s->params, s->result));
  }
}

// A batched model's streaming method (`max_batch` above 1) steps the streams of all requests
// together through the file's `m_next_batch`, which takes each of the file's `m_next`'s
// parameters (`next`) as a list and returns a list of what it returns, types exactly as there
// (as the backend checks when it loads the file); without one, each stream steps alone.
void verify_stream_batched(const plan::Model& m, const plan::Method& meth, const engine::MethodSchema& next,
                           const std::vector<engine::MethodSchema>& schemas, const dsl::Span& where, dsl::Diagnostics& diags) {
  const std::string name = meth.name + "_next_batch";
  const engine::MethodSchema* s = find_schema(schemas, name);
  if (!s) {
    diags.report(dsl::Diag::model_file_stream_batch_missing, where, m.name, meth.name, m.options.max_batch, m.path, meth.name);
    return;
  }
  std::vector<plan::Param> want = next.params;
  for (auto& p : want) p.type = dsl::Type::list(p.type);
  const dsl::TypeRef result = dsl::Type::list(next.result);
  auto same = [](const dsl::TypeRef& a, const dsl::TypeRef& b) { return a && b && a->to_string() == b->to_string(); };
  bool fits = s->params.size() == want.size() && same(s->result, result);
  for (std::size_t i = 0; fits && i < want.size(); ++i) fits = same(want[i].type, s->params[i].type);
  if (!fits) {
    diags.report(dsl::Diag::model_file_stream_batch_signature, where, m.name, meth.name, meth.name,
                 engine::signature_text(want, result), engine::signature_text(s->params, s->result));
  }
}

// A streaming method `m(params) -> stream<T>` runs through the file's `m_next(params, emitted:
// list<T>) -> T?` (engine/backends/torch/torch_backend.cpp): called with the items it returned so
// far, None ending the stream. The file has no `m`; `m_next` is checked instead (and, batched,
// `m_next_batch`).
void verify_streaming(const plan::Model& m, const plan::Method& meth, const std::vector<engine::MethodSchema>& schemas,
                      std::string_view noun, const dsl::Span& where, dsl::Diagnostics& diags) {
  const std::string name = meth.name + "_next";
  const dsl::TypeRef item = meth.result->elem;
  std::vector<plan::Param> want = meth.params;
  want.push_back({"emitted", dsl::Type::list(item)});
  const std::string want_text = engine::signature_text(want, dsl::Type::optional(item));
  const engine::MethodSchema* s = find_schema(schemas, name);
  if (!s) {
    std::string have;
    for (const auto& x : schemas) have += fmt::format("{}`{}`", have.empty() ? "; it has " : ", ", x.name);
    diags.report(dsl::Diag::model_file_method_missing, where, noun, m.path, name,
                 fmt::format(", which the streaming method `{}.{}` needs: `{}{}`{}", m.name, meth.name, name, want_text, have));
    return;
  }
  // The result must be an optional (None ends the stream) of what the graph declares; the items
  // go back to the file as its last parameter.
  bool fits = s->params.size() == want.size() && s->result->kind == dsl::TypeKind::Optional &&
              dsl::assignable(s->result, dsl::Type::optional(item)) && dsl::assignable(want.back().type, s->params.back().type);
  for (std::size_t i = 0; fits && i < meth.params.size(); ++i) {
    fits = dsl::assignable(meth.params[i].type, s->params[i].type);
  }
  if (!fits) {
    // "`gen.generate` is declared `(prompt: str) -> stream<str>`, so the model file's
    // `generate_next` must be `(prompt: str, emitted: list<str>) -> str?`, but the model file has `...`"
    diags.report(dsl::Diag::model_file_signature, where, m.name, meth.name,
                 fmt::format("{}`, so the {}'s `{}` must be `{}", engine::signature_text(meth.params, meth.result), noun, name,
                             want_text),
                 noun, engine::signature_text(s->params, s->result));
    return;
  }
  for (std::size_t i = 0; i < meth.params.size(); ++i) {
    if (meth.params[i].name == s->params[i].name) continue;
    diags.report(dsl::Diag::model_file_param_name, where, i + 1, m.name, meth.name, meth.params[i].name, s->params[i].name,
                 fmt::format("{}'s `{}`", noun, name));
  }
  if (m.options.max_batch > 1 && m.backend != "remote") verify_stream_batched(m, meth, *s, schemas, where, diags);
}

// Compares each declared method with what the model file says (TorchScript schemas).
void verify_model_files(const plan::Plan& p, const dsl::SourceManager& sm, bool require_remote_servers,
                        dsl::Diagnostics& diags) {
  engine::BackendRegistry backends = engine::default_backends();
  for (const auto& m : p.models) {
    if (m.resolved_path.empty()) continue;  // checked without its file
    engine::Backend* b = backends.find(m.backend);
    if (!b) continue;
    // A remote model's "file" is the graph another braid server serves (GET /graphs there).
    const bool remote = m.backend == "remote";
    const std::string_view noun = remote ? "remote graph" : "model file";
    auto schemas = b->inspect(m.resolved_path);
    if (!schemas && remote && !require_remote_servers) {
      diags.report(dsl::Diag::remote_not_checked, span_at(sm, m.loc, m.name.size()), m.path, schemas.error().message);
      continue;
    }
    if (!schemas) {
      diags.report(dsl::Diag::model_file_unreadable, span_at(sm, m.loc, m.name.size()), noun, m.path, schemas.error().message);
      continue;
    }
    for (const auto& meth : m.methods) {
      const engine::MethodSchema* s = find_schema(*schemas, meth.name);
      auto where = span_at(sm, meth.loc, meth.name.size());
      if (meth.result && meth.result->is_stream() && !remote) {
        verify_streaming(m, meth, *schemas, noun, where, diags);
        continue;
      }
      if (!s) {
        std::string have;
        for (const auto& x : *schemas) have += fmt::format("{}`{}`", have.empty() ? "; it has " : ", ", x.name);
        diags.report(dsl::Diag::model_file_method_missing, where, noun, m.path, meth.name, have);
        continue;
      }
      // A file compiled for one kind of device (an AOTInductor package) runs only there.
      const std::string_view placed = m.placement.kind == dsl::PlacementKind::Cuda ? "cuda" : "cpu";
      if (!s->device.empty() && s->device != placed) {
        diags.report(dsl::Diag::model_file_device, span_at(sm, m.loc, m.name.size()), m.name, m.placement.to_string(), m.name,
                     meth.name, noun, m.path, s->device);
        continue;
      }
      if (!s->signature_known) continue;
      // A remote streaming endpoint (`stream<T>`) is read as a stream, or whole as `list<T>`.
      dsl::TypeRef result = s->result;
      if (remote && result && result->is_stream() && meth.result && !meth.result->is_stream()) {
        result = dsl::Type::list(result->elem);
      }
      bool fits = s->params.size() == meth.params.size() && dsl::assignable(result, meth.result);
      for (std::size_t i = 0; fits && i < meth.params.size(); ++i) {
        fits = dsl::assignable(meth.params[i].type, s->params[i].type);
      }
      if (!fits) {
        diags.report(dsl::Diag::model_file_signature, where, m.name, meth.name, engine::signature_text(meth.params, meth.result),
                     noun, engine::signature_text(s->params, s->result));
        continue;
      }
      for (std::size_t i = 0; i < meth.params.size(); ++i) {
        if (s->params[i].name.empty() || meth.params[i].name == s->params[i].name) continue;  // unnamed: positional
        if (remote) {  // a remote call sends its arguments by name
          diags.report(dsl::Diag::remote_param_name, where, i + 1, m.name, meth.name, meth.params[i].name, s->params[i].name);
        } else {
          diags.report(dsl::Diag::model_file_param_name, where, i + 1, m.name, meth.name, meth.params[i].name,
                       s->params[i].name, noun);
        }
      }
      if (m.options.max_batch > 1 && !s->batches_itself) verify_batched(m, meth, *schemas, where, diags);
    }
  }
  diags.sort_by_location();
}

}  // namespace

bool use_color(const CommonOptions& o) {
  if (o.color == "always") return true;
  if (o.color == "never") return false;
  return isatty(fileno(stderr)) != 0 && std::getenv("NO_COLOR") == nullptr;
}

dsl::FrontendOptions frontend_options(const CommonOptions& o) {
  dsl::FrontendOptions f;
  f.model_paths = o.model_paths;
  if (const char* env = std::getenv("BRAID_MODEL_PATH")) {
    std::stringstream ss(env);
    std::string dir;
    while (std::getline(ss, dir, ':')) {
      if (!dir.empty()) f.model_paths.push_back(dir);
    }
  }
#ifdef BRAID_DEFAULT_MODEL_PATH
  f.model_paths.push_back(BRAID_DEFAULT_MODEL_PATH);  // the models this build generated
#endif
  f.require_model_files = o.require_models;
  f.regular_files_only = o.regular_files_only;
  return f;
}

namespace {

std::shared_ptr<const plan::Plan> compile_with(const std::string& file, const CommonOptions& o, dsl::Diagnostics& diags,
                                               std::string& rendered, bool color) {
  dsl::SourceManager sm;
  auto p = dsl::compile_file(file, frontend_options(o), sm, diags);
  if (p) {
    verify_model_files(*p, sm, o.require_remote_servers, diags);
    if (diags.has_errors()) p = nullptr;
  }
  rendered += dsl::render_all(diags, sm, color);
  return p;
}

}  // namespace

std::shared_ptr<const plan::Plan> compile_to(const std::string& file, const CommonOptions& o, std::string& rendered,
                                             bool color) {
  dsl::Diagnostics diags;
  return compile_with(file, o, diags, rendered, color);
}

std::shared_ptr<const plan::Plan> compile(const std::string& file, const CommonOptions& o, bool summary) {
  dsl::Diagnostics diags;
  std::string rendered;
  auto p = compile_with(file, o, diags, rendered, use_color(o));
  std::fputs(rendered.c_str(), stderr);
  if (summary) {
    if (p) {
      std::size_t nodes = 0;
      for (const auto& ep : p->endpoints) nodes += ep.nodes.size();
      std::size_t with_files = 0;
      for (const auto& m : p->models) with_files += !m.resolved_path.empty();
      std::fprintf(stderr, "%s: ok: %s, %s (%zu with model files checked), %s%s\n", file.c_str(),
                   plural(p->endpoints.size(), "endpoint").c_str(), plural(p->models.size(), "model").c_str(), with_files,
                   plural(nodes, "node").c_str(),
                   diags.warning_count() ? fmt::format(", {}", plural(diags.warning_count(), "warning")).c_str() : "");
    } else {
      std::fprintf(stderr, "%s: %s, %s\n", file.c_str(), plural(diags.error_count(), "error").c_str(),
                   plural(diags.warning_count(), "warning").c_str());
    }
  }
  return p;
}

int check(const CheckOptions& o) {
  bool ok = true;
  for (const auto& f : o.files) ok = compile(f, o.common, true) != nullptr && ok;
  return ok ? 0 : 1;
}

int plan(const PlanOptions& o) {
  auto p = compile(o.file, o.common, false);
  if (!p) return 1;
  std::string text = o.dot      ? plan::to_dot(*p)
                     : o.json   ? plan::to_json(*p)
                     : o.openapi ? engine::json_text(http::openapi_document({p}), true) + "\n"
                                 : plan::to_text(*p);
  if (o.output.empty()) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    return 0;
  }
  std::FILE* f = std::fopen(o.output.c_str(), "wb");
  if (!f || std::fwrite(text.data(), 1, text.size(), f) != text.size() || std::fclose(f) != 0) {
    std::fprintf(stderr, "braid: cannot write `%s`\n", o.output.c_str());
    return 1;
  }
  return 0;
}

}  // namespace braid::cli
