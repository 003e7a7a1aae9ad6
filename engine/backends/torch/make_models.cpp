// braid-make-models OUTDIR: writes the TorchScript models that braid's example graphs, tests and
// benchmarks use. Every model is real TorchScript (methods defined from source with
// torch::jit::Module::define) with deterministic weights computed from a formula, so that the
// same files come out on every machine and every LibTorch version, and tests can expect exact
// outputs. Nothing is downloaded.
#include <torch/script.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

namespace {

constexpr int64_t kDim = 32;

// A deterministic weight matrix: rows x cols values in [-1, 1] from a seeded formula.
torch::Tensor weights(int64_t rows, int64_t cols, double seed) {
  auto t = torch::empty({rows, cols}, torch::kFloat32);
  auto a = t.accessor<float, 2>();
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      a[i][j] = static_cast<float>(std::sin(seed * 12.9898 + static_cast<double>(i) * 78.233 + static_cast<double>(j) * 37.719));
    }
  }
  return t;
}

// The same, scrambled (the fractional part of a large multiple): full rank, where weights()
// gives matrices of rank 2, so that a stack of such layers keeps telling inputs apart.
torch::Tensor scrambled_weights(int64_t rows, int64_t cols, double seed) {
  auto t = torch::empty({rows, cols}, torch::kFloat32);
  auto a = t.accessor<float, 2>();
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      const double v = std::sin(seed * 12.9898 + static_cast<double>(i) * 78.233 + static_cast<double>(j) * 37.719) * 43758.5453;
      a[i][j] = static_cast<float>((v - std::floor(v)) * 2.0 - 1.0);
    }
  }
  return t;
}

// Text features shared by every text model: a normalised bag of hashed characters. Every tensor a
// method makes is made on the device of the model's weights, so that each model also runs when
// a graph places it `on cuda`.
const char* kFeatures = R"(
def features(self, text: str) -> Tensor:
    x = torch.zeros(self.dim, device=self.w_in.device)
    n = len(text)
    for i in range(n):
        c = ord(text[i])
        x[(c * 31 + (i % 7)) % self.dim] += 1.0
    return x / float(n + 1)
)";

torch::jit::Module text_module(const std::string& name, double seed) {
  torch::jit::Module m(name);
  m.register_attribute("dim", c10::IntType::get(), kDim);
  m.register_parameter("w_in", weights(kDim, kDim, seed), false);
  m.define(kFeatures);
  return m;
}

void save(torch::jit::Module& m, const std::filesystem::path& dir, const std::string& file) {
  m.eval();
  m.save((dir / file).string());
  std::printf("wrote %s\n", (dir / file).string().c_str());
}

// A text generator: generate(prompt) appends `steps` words picked by a recurrent network, each
// after a space. generate_next(prompt, emitted) is its streaming form (a graph's
// `def generate(prompt: str) -> stream<str>`, engine/backends/torch/torch_backend.cpp): the word
// generate picks after the words `emitted` (the network's state recomputed from the prompt and
// them, with the very operations generate runs), or None after `steps` words. Fed back its own
// words, it yields exactly generate's: generate(p) == p + " " + " ".join(words). And
// generate_next_batch(prompts, emitted) is generate_next for many streams at once (continuous
// batching), their states advanced together with matrix products, each stream as far as its
// own words go.
void generator(const std::filesystem::path& dir, const std::string& file, const std::string& method, double seed,
               int64_t steps, const std::vector<std::string>& vocab) {
  auto m = text_module("Generator", seed);
  m.register_parameter("w_out", weights(static_cast<int64_t>(vocab.size()), kDim, seed + 1), false);
  m.register_attribute("steps", c10::IntType::get(), steps);
  c10::List<std::string> words;
  for (const auto& w : vocab) words.push_back(w);
  m.register_attribute("vocab", c10::ListType::ofStrings(), words);
  m.define("def " + method + R"((self, prompt: str) -> str:
    h = torch.tanh(torch.mv(self.w_in, self.features(prompt)) * 4.0)
    out = prompt
    for step in range(self.steps):
        idx = int(torch.argmax(torch.mv(self.w_out, h)).item())
        out = out + " " + self.vocab[idx]
        h = torch.tanh(torch.mv(self.w_in, self.features(self.vocab[idx])) * 4.0 + torch.roll(h, step + 1) * 2.0)
    return out

def )" + method + R"(_next(self, prompt: str, emitted: List[str]) -> Optional[str]:
    n = len(emitted)
    if n >= self.steps:
        return None
    h = torch.tanh(torch.mv(self.w_in, self.features(prompt)) * 4.0)
    for step in range(n):
        h = torch.tanh(torch.mv(self.w_in, self.features(emitted[step])) * 4.0 + torch.roll(h, step + 1) * 2.0)
    idx = int(torch.argmax(torch.mv(self.w_out, h)).item())
    return self.vocab[idx]

def )" + method + R"(_next_batch(self, prompt: List[str], emitted: List[List[str]]) -> List[Optional[str]]:
    n = len(prompt)
    x = torch.stack([self.features(p) for p in prompt])
    h = torch.tanh(torch.mm(x, self.w_in.t()) * 4.0)
    longest = 0
    for e in emitted:
        longest = max(longest, min(len(e), self.steps))
    for step in range(longest):
        rows: List[Tensor] = []
        for j in range(n):
            if step < len(emitted[j]):
                rows.append(self.features(emitted[j][step]))
            else:
                rows.append(torch.zeros(self.dim, device=self.w_in.device))
        moved = torch.tanh(torch.mm(torch.stack(rows), self.w_in.t()) * 4.0 + torch.roll(h, step + 1, 1) * 2.0)
        mask = torch.tensor([step < len(e) for e in emitted], device=self.w_in.device).unsqueeze(1)
        h = torch.where(mask, moved, h)
    idx: List[int] = torch.argmax(torch.mm(h, self.w_out.t()), 1).tolist()
    out: List[Optional[str]] = []
    for j in range(n):
        if len(emitted[j]) >= self.steps:
            out.append(None)
        else:
            out.append(self.vocab[idx[j]])
    return out
)");
  save(m, dir, file);
}

// A scorer: a logistic regression over the text features, returning a float in (0, 1). Its
// batched form (what braid's batcher calls when a graph sets `max_batch`) scores a list of
// texts with one matrix product, one result per text.
void scorer(const std::filesystem::path& dir, const std::string& file, const std::string& method, double seed) {
  auto m = text_module("Scorer", seed);
  m.register_parameter("w_score", weights(1, kDim, seed + 2).reshape({kDim}), false);
  m.define("def " + method + R"((self, text: str) -> float:
    h = torch.tanh(torch.mv(self.w_in, self.features(text)) * 4.0)
    return float(torch.sigmoid(torch.dot(self.w_score, h)).item())

def )" + method + R"(_batch(self, text: List[str]) -> List[float]:
    x = torch.stack([self.features(t) for t in text])
    h = torch.tanh(torch.mm(x, self.w_in.t()) * 4.0)
    scores: List[float] = torch.sigmoid(torch.mv(h, self.w_score)).tolist()
    return scores
)");
  save(m, dir, file);
}

// Zero-shot classification: softmax over the cosine similarity of the text's and each label's
// embedding; batched, the texts are embedded with one matrix product.
void zero_shot(const std::filesystem::path& dir) {
  auto m = text_module("ZeroShot", 7.0);
  m.define(R"(
def embed(self, text: str) -> Tensor:
    e = torch.tanh(torch.mv(self.w_in, self.features(text)) * 4.0)
    return e / (torch.norm(e) + 1e-6)

def classify(self, text: str, labels: List[str]) -> Tensor:
    t = self.embed(text)
    scores = torch.zeros(len(labels), device=t.device)
    for i in range(len(labels)):
        scores[i] = torch.dot(t, self.embed(labels[i])) * 5.0
    return torch.softmax(scores, 0)

def classify_batch(self, text: List[str], labels: List[List[str]]) -> List[Tensor]:
    x = torch.stack([self.features(t) for t in text])
    e = torch.tanh(torch.mm(x, self.w_in.t()) * 4.0)
    e = e / (torch.norm(e, 2, [1], True) + 1e-6)
    out: List[Tensor] = []
    for j in range(len(text)):
        names = torch.stack([self.embed(label) for label in labels[j]])
        out.append(torch.softmax(torch.mv(names, e[j]) * 5.0, 0))
    return out
)");
  save(m, dir, "zero_shot.pt");
}

// A text encoder for embedding classification: encode(text) gives one state per word, padded
// to a multiple of 8 tokens as a tokenizer pads a batch (the padding has its own state, as a pad
// token does, so only the mask keeps it out of a mean), with the mask of the real words;
// embed_labels(labels) one row per label, from the same weights (the states are not
// normalised: pooled_cosine pools and normalises).
void encoder(const std::filesystem::path& dir) {
  auto m = text_module("Encoder", 11.0);
  m.define(R"(
def state(self, word: str) -> Tensor:
    f = self.features(word)
    return torch.tanh(torch.mv(self.w_in, f - f.mean()) * 4.0)

def encode(self, text: str) -> Dict[str, Tensor]:
    words = text.split()
    seq = max(8, ((len(words) + 7) // 8) * 8)
    hidden = self.state("<pad>").repeat(seq, 1)
    mask = torch.zeros(seq, device=self.w_in.device)
    for i in range(len(words)):
        hidden[i] = self.state(words[i])
        mask[i] = 1.0
    return {"hidden": hidden, "mask": mask > 0.5}

def embed_labels(self, labels: List[str]) -> Tensor:
    out = torch.zeros(len(labels), self.dim, device=self.w_in.device)
    for i in range(len(labels)):
        out[i] = self.state(labels[i])
    return out
)");
  save(m, dir, "encoder.pt");
}

void preprocessor(const std::filesystem::path& dir) {
  torch::jit::Module m("Preprocessor");
  m.define(R"(
def preprocess(self, text: str) -> str:
    return " ".join(text.lower().split())
)");
  save(m, dir, "preprocessor.pt");
}

void language_id(const std::filesystem::path& dir) {
  torch::jit::Module m("LanguageId");
  c10::List<std::string> markers;
  for (const char* w : {"der", "die", "das", "und", "ist", "nicht", "ich", "ein", "eine"}) markers.push_back(w);
  m.register_attribute("markers", c10::ListType::ofStrings(), markers);
  m.define(R"(
def detect(self, text: str) -> str:
    hits = 0
    words = text.lower().split()
    for w in words:
        if w in self.markers:
            hits += 1
    if hits * 4 >= len(words) and hits > 0:
        return "de"
    return "en"
)");
  save(m, dir, "language_id.pt");
}

// Tensors in, tensors out: softmax(x @ W).
void tensor_model(const std::filesystem::path& dir) {
  torch::jit::Module m("TensorModel");
  m.register_parameter("w", weights(16, 4, 11.0), false);
  m.define(R"(
def forward(self, x: Tensor) -> Tensor:
    return torch.softmax(torch.mm(x, self.w), -1)
)");
  save(m, dir, "tensor.pt");
}

// A model whose compute cost is a parameter: `rounds` 128x128 matmuls.
void busy(const std::filesystem::path& dir) {
  torch::jit::Module m("Busy");
  m.register_parameter("w", weights(128, 128, 13.0) * 0.05, false);
  m.define(R"(
def run(self, text: str, rounds: int) -> str:
    x = torch.ones(1, 128, device=self.w.device)
    for r in range(rounds):
        x = torch.tanh(torch.mm(x, self.w))
    return text
)");
  save(m, dir, "busy.pt");
}

// A dense embedder, two 1024x1024 layers: one call is two matrix-vector products that read
// all 8 MB of weights, a batch of calls is two matrix products that read them once. What a
// batcher is for, on a CPU and more so on a GPU (bench/graphs/batching.graph).
void dense(const std::filesystem::path& dir) {
  torch::jit::Module m("Dense");
  m.register_parameter("w1", weights(1024, 1024, 23.0) * 0.03, false);
  m.register_parameter("w2", weights(1024, 1024, 29.0) * 0.03, false);
  m.define(R"(
def embed(self, x: Tensor) -> Tensor:
    return torch.tanh(torch.mv(self.w2, torch.tanh(torch.mv(self.w1, x))))

def embed_batch(self, x: List[Tensor]) -> List[Tensor]:
    h = torch.tanh(torch.mm(torch.tanh(torch.mm(torch.stack(x), self.w1.t())), self.w2.t()))
    return list(h.unbind(0))
)");
  save(m, dir, "dense.pt");
}

// A token pooler over variable-length inputs ([len, 64] rows of token features), batched in the
// packed form (engine/batch_form.hpp): the engine pads the calls' tokens into one [n, L, 64]
// tensor and passes their lengths, and the model masks the padding. `pool` averages tanh(x W)
// over the tokens; `tag` gives each token 8 scores (its lengths as a host list, a list back, one
// [len, 8] per call);
// `scale` takes fixed [64] vectors, packed without lengths, and returns rows; `weigh` is `pool`
// with a number per call after the lengths; `score` and `count` return a number per call (a float, an
// int), as rows of one [n] tensor; `shift` packs scalar tensors; `mix` maps tokens
// to tokens (one call at a time), so that packed tensors can come from another model's output. `label_batch` fits
// no batched form (rows stand for tensors and numbers, not strings), for the checker's tests.
void pooler(const std::filesystem::path& dir) {
  torch::jit::Module m("Pooler");
  m.register_parameter("w", weights(64, 64, 31.0) * 0.2, false);
  m.register_parameter("w_tag", weights(64, 8, 37.0) * 0.2, false);
  m.define(R"(
def pool(self, x: Tensor) -> Tensor:
    if x.size(0) == 0:
        return torch.zeros(64, device=self.w.device)
    return torch.tanh(torch.mm(x, self.w)).mean(0)

def pool_batch(self, x: Tensor, x_lengths: Tensor) -> Tensor:
    h = torch.tanh(torch.matmul(x, self.w))
    mask = (torch.arange(x.size(1), device=x.device).unsqueeze(0) < x_lengths.unsqueeze(1)).to(h.dtype)
    return (h * mask.unsqueeze(2)).sum(1) / x_lengths.clamp(min=1).to(h.dtype).unsqueeze(1)

def tag(self, x: Tensor) -> Tensor:
    return torch.mm(torch.tanh(torch.mm(x, self.w)), self.w_tag)

def tag_batch(self, x: Tensor, x_lengths: List[int]) -> List[Tensor]:
    h = torch.matmul(torch.tanh(torch.matmul(x, self.w)), self.w_tag)
    return [h[i, :x_lengths[i]] for i in range(len(x_lengths))]

def scale(self, x: Tensor, by: float) -> Tensor:
    return torch.mv(self.w, x) * by

def scale_batch(self, x: Tensor, by: List[float]) -> Tensor:
    return torch.mm(x, self.w.t()) * torch.tensor(by, device=x.device).unsqueeze(1)

def weigh(self, x: Tensor, by: float) -> Tensor:
    return self.pool(x) * by

def weigh_batch(self, x: Tensor, x_lengths: Tensor, by: List[float]) -> Tensor:
    return self.pool_batch(x, x_lengths) * torch.tensor(by, device=x.device).unsqueeze(1)

def score(self, x: Tensor) -> float:
    return float(self.pool(x).sum())

def score_batch(self, x: Tensor, x_lengths: Tensor) -> Tensor:
    return self.pool_batch(x, x_lengths).sum(1)

def count(self, x: Tensor) -> int:
    return x.size(0)

def count_batch(self, x: Tensor, x_lengths: Tensor) -> Tensor:
    return x_lengths

def shift(self, x: Tensor) -> Tensor:
    return x + 1.0

def shift_batch(self, x: Tensor) -> Tensor:
    return x + 1.0

def mix(self, x: Tensor) -> Tensor:
    return torch.tanh(torch.mm(x, self.w))

def label(self, x: Tensor) -> str:
    return "tokens"

def label_batch(self, x: Tensor) -> Tensor:
    return torch.zeros(x.size(0))
)");
  save(m, dir, "pooler.pt");
}

// Models for the device path (they run anywhere; they are written for `on cuda`).
// One small step, tanh(x @ W) with W 256x256: a chain of these is launch-bound, so a chain
// measures what braid adds per GPU node. add(a, b) joins two branches on the device.
void gpu_step(const std::filesystem::path& dir) {
  torch::jit::Module m("GpuStep");
  m.register_parameter("w", weights(256, 256, 17.0) * 0.0625, false);
  m.define(R"(
def forward(self, x: Tensor) -> Tensor:
    return torch.tanh(torch.mm(x, self.w))

def add(self, a: Tensor, b: Tensor) -> Tensor:
    return a + b
)");
  save(m, dir, "gpu_step.pt");
}

// `rounds` dependent small matmuls: work that occupies a stream for a while without filling
// the device, so that two branches on two streams can overlap.
void gpu_busy(const std::filesystem::path& dir) {
  torch::jit::Module m("GpuBusy");
  m.register_parameter("w", weights(512, 512, 19.0) * 0.04, false);
  m.define(R"(
def run(self, x: Tensor, rounds: int) -> Tensor:
    for r in range(rounds):
        x = torch.tanh(torch.mm(x, self.w))
    return x
)");
  save(m, dir, "gpu_busy.pt");
}

// `n` scores, as a language model's head gives over its vocabulary (no weights: a 128k
// vocabulary would be a 128 MB file): for top-k over scores left on the device.
void gpu_logits(const std::filesystem::path& dir) {
  torch::jit::Module m("GpuLogits");
  m.define(R"(
def forward(self, x: Tensor, n: int) -> Tensor:
    return torch.sin(torch.arange(n, device=x.device).float() * 0.37 + x.sum())
)");
  save(m, dir, "gpu_logits.pt");
}

// An encoder's outputs for pooled_cosine: token states tanh(x @ W) (x: [batch, seq, 64]), a
// mask of the tokens whose inputs sum above 0, and `n` label rows of 64 (no input: on the
// model's device).
void gpu_encoder(const std::filesystem::path& dir) {
  torch::jit::Module m("GpuEncoder");
  m.register_parameter("w", weights(64, 64, 23.0) * 0.125, false);
  m.define(R"(
def encode(self, x: Tensor) -> Dict[str, Tensor]:
    return {"hidden": torch.tanh(torch.matmul(x, self.w)), "mask": x.sum(-1) > 0.0}

def labels(self, n: int) -> Tensor:
    return torch.sin(torch.arange(n * 64, device=self.w.device).float().view(n, 64) * 0.1)
)");
  save(m, dir, "gpu_encoder.pt");
}

// A language model's decoding step, as far as its cost goes: each word comes from the last one
// and its position (the first from the prompt) through embeddings and four dense 512-wide
// layers, `steps`
// words in all. Its weights (4 MB) are read once per step whatever the number of streams the
// step advances, and what it does per stream is small (a word looked up in its vocabulary), so
// a step of many streams (generate_next_batch: continuous batching) costs much less than as many
// steps of one, as a real decoder's does.
void decoder(const std::filesystem::path& dir, const std::vector<std::string>& vocab) {
  constexpr int64_t kWide = 512;
  const auto n = static_cast<int64_t>(vocab.size());
  auto m = text_module("Decoder", 11.0);
  m.register_parameter("embed", scrambled_weights(n, kWide, 12.0), false);
  m.register_parameter("position", scrambled_weights(32, kWide, 18.0), false);
  for (int i = 0; i < 4; ++i) {
    m.register_parameter("w_" + std::to_string(i),
                         scrambled_weights(kWide, kWide, 13.0 + i) * (1.5 / std::sqrt(static_cast<double>(kWide))), false);
  }
  m.register_parameter("w_vocab", scrambled_weights(n, kWide, 17.0), false);
  m.register_attribute("steps", c10::IntType::get(), int64_t{32});
  c10::List<std::string> words;
  for (const auto& w : vocab) words.push_back(w);
  m.register_attribute("vocab", c10::ListType::ofStrings(), words);
  m.define(R"(
def decode(self, tokens: List[int], positions: List[int]) -> List[int]:
    h = self.embed[torch.tensor(tokens, device=self.embed.device)]
    h = h + self.position[torch.tensor(positions, device=self.embed.device)]
    h = torch.tanh(torch.mm(h, self.w_0.t()))
    h = torch.tanh(torch.mm(h, self.w_1.t()))
    h = torch.tanh(torch.mm(h, self.w_2.t()))
    h = torch.tanh(torch.mm(h, self.w_3.t()))
    out: List[int] = torch.argmax(torch.mm(h, self.w_vocab.t()), 1).tolist()
    return out

def last_token(self, prompt: str, emitted: List[str]) -> int:
    n = len(emitted)
    if n == 0:
        return int(torch.argmax(self.features(prompt)).item()) % len(self.vocab)
    return self.vocab.index(emitted[n - 1])

def generate_next(self, prompt: str, emitted: List[str]) -> Optional[str]:
    if len(emitted) >= self.steps:
        return None
    return self.vocab[self.decode([self.last_token(prompt, emitted)], [len(emitted) % 32])[0]]

def generate_next_batch(self, prompt: List[str], emitted: List[List[str]]) -> List[Optional[str]]:
    tokens: List[int] = []
    positions: List[int] = []
    for j in range(len(prompt)):
        tokens.append(self.last_token(prompt[j], emitted[j]))
        positions.append(len(emitted[j]) % 32)
    idx = self.decode(tokens, positions)
    out: List[Optional[str]] = []
    for j in range(len(prompt)):
        if len(emitted[j]) >= self.steps:
            out.append(None)
        else:
            out.append(self.vocab[idx[j]])
    return out
)");
  save(m, dir, "decoder.pt");
}

// Streams for the edges of the streaming protocol: count(n) is 0, 1, ... n - 1 (batched too);
// tamper(n) appends to the list of items it is handed (which braid refuses; batched, only the
// second stream's, the fourth's...); alone(n) has no batched form; skewed(n) and loose(n) have
// a `_next_batch` of the wrong shape (skewed's `emitted` is not a list of lists; loose takes
// floats where `_next` takes an int, and returns ints where `_next` may return None).
void counter(const std::filesystem::path& dir) {
  torch::jit::Module m("Counter");
  m.define(R"(
def count_next(self, n: int, emitted: List[int]) -> Optional[int]:
    if len(emitted) >= n:
        return None
    return len(emitted)

def count_next_batch(self, n: List[int], emitted: List[List[int]]) -> List[Optional[int]]:
    out: List[Optional[int]] = []
    for j in range(len(n)):
        out.append(self.count_next(n[j], emitted[j]))
    return out

def tamper_next(self, n: int, emitted: List[int]) -> Optional[int]:
    if len(emitted) >= n:
        return None
    emitted.append(-1)
    return len(emitted)

def tamper_next_batch(self, n: List[int], emitted: List[List[int]]) -> List[Optional[int]]:
    out: List[Optional[int]] = []
    for j in range(len(n)):
        if j % 2 == 1:
            emitted[j].append(-1)
        out.append(len(emitted[j]))
    return out

def alone_next(self, n: int, emitted: List[int]) -> Optional[int]:
    return self.count_next(n, emitted)

def loose_next(self, n: int, emitted: List[int]) -> Optional[int]:
    return self.count_next(n, emitted)

def loose_next_batch(self, n: List[float], emitted: List[List[int]]) -> List[int]:
    out: List[int] = []
    return out

def skewed_next(self, n: int, emitted: List[int]) -> Optional[int]:
    return self.count_next(n, emitted)

def skewed_next_batch(self, n: List[int], emitted: List[int]) -> List[Optional[int]]:
    out: List[Optional[int]] = []
    return out
)");
  save(m, dir, "counter.pt");
}

// The identity on strings: for measuring what braid adds around a model call.
void echo(const std::filesystem::path& dir) {
  torch::jit::Module m("Echo");
  m.define(R"(
def echo(self, text: str) -> str:
    return text
)");
  save(m, dir, "echo.pt");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
    return 2;
  }
  try {
    std::filesystem::path dir(argv[1]);
    std::filesystem::create_directories(dir);
    const std::vector<std::string> vocab = {"the",  "model", "graph", "runs", "fast", "and",   "then",  "every",
                                            "node", "joins", "a",     "new",  "idea", "today", "braid", "works"};
    generator(dir, "gpt2.pt", "generate", 1.0, 6, vocab);
    generator(dir, "distilgpt2.pt", "generate", 2.0, 4, vocab);
    generator(dir, "summarizer.pt", "generate", 3.0, 3, vocab);
    scorer(dir, "bert.pt", "classify", 4.0);
    scorer(dir, "bert_large.pt", "classify", 5.0);
    scorer(dir, "sentiment_a.pt", "predict", 8.0);
    scorer(dir, "sentiment_b.pt", "predict", 9.0);
    zero_shot(dir);
    encoder(dir);
    preprocessor(dir);
    language_id(dir);
    tensor_model(dir);
    busy(dir);
    dense(dir);
    pooler(dir);
    echo(dir);
    decoder(dir, vocab);
    counter(dir);
    gpu_step(dir);
    gpu_busy(dir);
    gpu_logits(dir);
    gpu_encoder(dir);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "braid-make-models: %s\n", e.what());
    return 1;
  }
  return 0;
}
