#include "dsl/frontend.hpp"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <unordered_map>

#include "dsl/checker.hpp"
#include "dsl/compile.hpp"
#include "dsl/remote.hpp"
#include "dsl/parser.hpp"

namespace braid::dsl {
namespace {

namespace fs = std::filesystem;

// Reads a whole file; on failure returns nullopt and sets `why`.
std::optional<std::string> read_file(const std::string& path, bool regular_only, std::string& why) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    why = "is a directory";
    return std::nullopt;
  }
  if (regular_only && fs::exists(path, ec) && !fs::is_regular_file(path, ec)) {
    why = "not a regular file";
    return std::nullopt;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    why = std::strerror(errno);
    return std::nullopt;
  }
  std::string text;
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxFileSize) {
      why = fmt::format("larger than {} bytes", kMaxFileSize);
      return std::nullopt;
    }
  }
  return text;
}

std::string canonical_key(const std::string& path) {
  std::error_code ec;
  auto p = fs::weakly_canonical(fs::absolute(path, ec), ec);
  return ec ? path : p.string();
}

class Loader {
 public:
  Loader(Program& prog, SourceManager& sm, Diagnostics& diags) : prog_(prog), sm_(sm), diags_(diags) {}

  void load_root(const std::string& path, std::string text) {
    FileId id = sm_.add(path, std::move(text));
    prog_.sm = &sm_;
    parse_and_follow(id, canonical_key(path));
  }

 private:
  void parse_and_follow(FileId id, const std::string& key) {
    const SourceFile& f = sm_.file(id);
    if (f.text().size() > kMaxFileSize) {
      diags_.report(Diag::file_too_large, Span{id, 0, 0}, f.text().size(), kMaxFileSize);
      return;
    }
    loaded_.emplace(key, id);
    stack_.push_back(key);
    auto module = std::make_unique<Module>(parse_file(sm_, id, diags_));
    Module* m = module.get();
    std::size_t index = prog_.modules.size();
    prog_.modules.push_back(std::move(module));
    fs::path dir = fs::path(f.path()).parent_path();
    for (const auto& imp : m->imports) {
      std::string path = (dir / imp.path).lexically_normal().string();
      std::string ikey = canonical_key(path);
      auto on_stack = std::find(stack_.begin(), stack_.end(), ikey);
      if (on_stack != stack_.end()) {
        std::string cycle;
        for (auto it = on_stack; it != stack_.end(); ++it) cycle += fmt::format("`{}` -> ", quote_text(fs::path(*it).filename().string()));
        cycle += fmt::format("`{}`", quote_text(fs::path(ikey).filename().string()));
        diags_.report(Diag::import_cycle, imp.span, cycle);
        continue;
      }
      if (loaded_.count(ikey)) continue;  // already loaded through another import
      std::string why;
      auto text = read_file(path, true, why);  // an import is a file: `<(...)` is for the root alone
      if (!text) {
        diags_.report(Diag::import_not_found, imp.span, quote_text(imp.path, 200), why);
        continue;
      }
      parse_and_follow(sm_.add(path, std::move(*text)), ikey);
    }
    stack_.pop_back();
    prog_.decl_order.push_back(index);
  }

  Program& prog_;
  SourceManager& sm_;
  Diagnostics& diags_;
  std::unordered_map<std::string, FileId> loaded_;
  std::vector<std::string> stack_;
};

std::unordered_map<const ModelDecl*, std::string> resolve_models(const Program& prog, const FrontendOptions& opts,
                                                                 Diagnostics& diags) {
  std::unordered_map<const ModelDecl*, std::string> out;
  for (const ModelDecl* m : prog.models) {
    if (m->backend.name == "remote") {
      // Not a file: the address of another braid server's graph. With model files required,
      // it is "found" for the backend to inspect (GET /graphs there); the checker has already
      // said whether it is a valid address.
      if (opts.require_model_files && std::holds_alternative<RemoteAddress>(parse_remote_address(m->path))) {
        out.emplace(m, m->path);
      } else {
        out.emplace(m, std::string());
      }
      continue;
    }
    fs::path graph_dir = fs::path(prog.sm->file(m->file).path()).parent_path();
    std::vector<fs::path> tried;
    std::string found;
    auto try_path = [&](const fs::path& p) {
      tried.push_back(p);
      std::error_code ec;
      if (fs::is_regular_file(p, ec)) {
        found = fs::absolute(p, ec).lexically_normal().string();
        return true;
      }
      return false;
    };
    if (fs::path(m->path).is_absolute()) {
      try_path(m->path);
    } else if (!try_path(graph_dir / m->path)) {
      for (const auto& dir : opts.model_paths) {
        if (try_path(fs::path(dir) / m->path)) break;
      }
    }
    if (found.empty() && opts.require_model_files) {
      auto b = diags.report(Diag::model_file_not_found, m->path_span, quote_text(m->path, 200));
      std::string where;
      for (const auto& t : tried) where += (where.empty() ? "" : ", ") + t.string();
      b.note(Span{}, "looked in " + quote_text(where, 400));
    }
    out.emplace(m, found);
  }
  return out;
}

}  // namespace

std::shared_ptr<const plan::Plan> compile_source(const std::string& path, std::string text, const FrontendOptions& options,
                                                 SourceManager& sm, Diagnostics& diags) {
  Program prog;
  Loader(prog, sm, diags).load_root(path, std::move(text));
  if (prog.modules.empty()) return nullptr;
  check_program(prog, diags);
  auto resolved = resolve_models(prog, options, diags);
  diags.sort_by_location();
  if (diags.has_errors()) return nullptr;
  return lower_program(prog, resolved);
}

std::shared_ptr<const plan::Plan> compile_file(const std::string& path, const FrontendOptions& options,
                                               SourceManager& sm, Diagnostics& diags) {
  std::string why;
  auto text = read_file(path, options.regular_files_only, why);
  if (!text) {
    diags.report(Diag::cannot_read_file, Span{}, quote_text(path, 200), why);
    return nullptr;
  }
  return compile_source(path, std::move(*text), options, sm, diags);
}

}  // namespace braid::dsl
