// The options spine: every option of a model is declared once, here, in nested structs that the
// modules take and that configs (train/config.h) bind to by name:
//
//   LongNetLMOptions ⊃ LayerOptions ⊃ DilatedAttentionOptions ⊃ EngineOptions
//
// Each struct has a visit function that names its fields with their allowed values (the schema
// that configs and flags read), and a check function, owned here, for the rules across fields.
// Checks throw OptionsError, which names the field, so a config loader can add file:line.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace longnet {

// Sizes of a sequence (tokens, segment lengths, rates) are at most 2^40 (about 10^12 tokens):
// products of them with batch, heads and head dim then stay far inside int64.
constexpr int64_t kMaxTokens = int64_t(1) << 40;

// How dilated attention runs (not what it computes): the choices that used to be environment
// variables. Every choice gives the same results up to rounding.
struct EngineOptions {
  // Dense attention kernel for bfloat16/float16 problems on the GPU: cudnn or flash.
  std::string backend = "cudnn";
  // CUDA streams the dense problems of one attention are spread over (1: the current stream).
  int64_t streams = 4;
  // GPU: merge branch outputs with longnet's fused kernel (false: plain ATen maths).
  bool fused_merge = true;
  // GPU forward in chunks when q has more elements than this; -1: when the branch outputs of a
  // one-piece forward would fill more than a quarter of the device memory; 0: always.
  int64_t chunk_above = -1;
  // Print the allocator's memory after each stage of the sequence-parallel forward.
  bool memory_trace = false;
};

// Dilated attention (docs/design.md section 2). is_causal and dropout are per call: a module
// sets them from its arguments and its training flag.
struct DilatedAttentionOptions {
  std::vector<int64_t> segment_lengths = {2048, 4096, 8192, 16384, 32768};  // w_i >= 1
  std::vector<int64_t> dilation_rates = {1, 2, 4, 6, 12};  // r_i >= 1, one per segment length
  bool is_causal = false;
  std::optional<double> softmax_scale;  // default 1 / sqrt(head_dim)
  double dropout = 0.0;                 // attention dropout probability, in [0, 1)
  EngineOptions engine;
};

// One transformer layer (MAGNETO pre-LN with sub-LN, docs/design.md section 4).
struct LayerOptions {
  int64_t d_model = 768;
  int64_t num_heads = 12;
  int64_t dim_feedforward = 3072;
  double dropout = 0.0;             // residual, FFN and attention dropout (training only)
  std::string activation = "gelu";  // gelu | relu
  double layer_norm_eps = 1e-5;
  double gamma_init = 1.0;            // MAGNETO gain of v_proj, out_proj, linear1, linear2 (set
                                      // by the models from their depth)
  DilatedAttentionOptions attention;  // segment lengths, rates and engine of every attention
};

// The reference library's encoder-decoder LongNet.
struct LongNetOptions {
  int64_t num_encoder_layers = 12;
  int64_t num_decoder_layers = 12;
  LayerOptions layer;
};

// The language model: the paper's decoder-only LM, or the reference library's encoder-decoder.
struct LongNetLMOptions {
  std::string variant = "decoder_only";  // decoder_only | encoder_decoder
  int64_t vocab_size = 256;              // byte-level by default
  int64_t num_layers = 12;               // decoder layers
  int64_t num_encoder_layers = 0;        // encoder_decoder only (then >= 1)
  // Recompute each layer's activations in the backward instead of keeping them (training).
  bool activation_checkpointing = false;
  // With activation_checkpointing: how many decoder layers, from the first, are recomputed
  // (0: all). Fewer trade memory for speed: each layer not recomputed keeps its activations and
  // saves one forward in the backward.
  int64_t checkpoint_layers = 0;
  LayerOptions layer;
};

// ---- the schema ------------------------------------------------------------------------------

// What a field accepts. Numbers (and list elements) lie in [min, max] (or open ends); strings
// are one of `choices` when it is not empty; lists have `list_size` elements when it is not 0.
struct OptionSpec {
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  bool min_open = false, max_open = false;
  std::vector<std::string> choices;
  size_t list_size = 0;
  bool allow_empty = false;  // strings and lists
  // A file-system path (a config key): '~' and '$NAME' in it are refused, as no shell expands
  // them there. A KIND:PATH value (data.tokenizer) is checked after its first ':'.
  bool path = false;
  bool contains(double v) const {
    return (min_open ? v > min : v >= min) && (max_open ? v < max : v <= max);
  }
  // Whole numbers compared exactly (a double rounds 2^60 + 128 to 2^60; a long double holds
  // every int64).
  bool contains_whole(int64_t v) const {
    const long double x = v;
    return (min_open ? x > min : x >= min) && (max_open ? x < max : x <= max);
  }
  std::string range_text() const;  // ">= 1", "in [0, 1)"
};
OptionSpec spec_range(double min, double max);      // [min, max]
OptionSpec spec_at_least(double min);               // [min, inf)
OptionSpec spec_above(double min, double max);      // (min, max]
OptionSpec spec_half_open(double min, double max);  // [min, max)
OptionSpec spec_choices(std::vector<std::string> choices);

// Walks the fields of an options struct: one call per field with its name (the config key under
// the struct's section), a reference to the value and what it accepts.
class OptionVisitor {
 public:
  virtual ~OptionVisitor() = default;
  virtual void field(const char* name, int64_t& v, const OptionSpec& s) = 0;
  virtual void field(const char* name, double& v, const OptionSpec& s) = 0;
  virtual void field(const char* name, bool& v, const OptionSpec& s) = 0;
  virtual void field(const char* name, std::string& v, const OptionSpec& s) = 0;
  virtual void field(const char* name, std::vector<int64_t>& v, const OptionSpec& s) = 0;
  virtual void field(const char* name, std::vector<double>& v, const OptionSpec& s) = 0;
};

// The configurable fields of each struct. LongNetLMOptions's are the config's `model:` section
// (layer and attention fields included, flat); EngineOptions's are `engine:`.
void options_visit(EngineOptions& o, OptionVisitor& v);
void options_visit(DilatedAttentionOptions& o, OptionVisitor& v);  // segment_lengths, rates
void options_visit(LayerOptions& o, OptionVisitor& v);             // + the attention's
void options_visit(LongNetLMOptions& o, OptionVisitor& v);         // + the layer's

// ---- checks ----------------------------------------------------------------------------------

// A bad option: `field` is its name as options_visit gives it ("num_heads",
// "segment_lengths[2]", "engine.streams"), `related` the other fields the rule involves.
class OptionsError : public std::invalid_argument {
 public:
  OptionsError(const std::string& owner, std::string field, std::string detail,
               std::vector<std::string> related = {});
  const std::string& field() const { return field_; }
  const std::string& detail() const { return detail_; }
  const std::vector<std::string>& related() const { return related_; }

 private:
  std::string field_, detail_;
  std::vector<std::string> related_;
};

// Each checks every field against its spec, then the rules across fields; throws OptionsError.
void engine_options_check(const EngineOptions& o);
// Every engine option acts only on a GPU: for a run on the CPU, "A, B act only on a GPU; this
// run is on the CPU, where they change nothing", naming each field of o set away from its
// default ("backend", "fused_merge", ...) by name_of (a flag, a config key); "" when none is.
std::string engine_options_cpu_note(const EngineOptions& o,
                                    const std::function<std::string(const std::string&)>& name_of);
// w and r: same count, at least one, values in range; softmax_scale finite and > 0; dropout.
void dilated_options_check(const DilatedAttentionOptions& o);
// d_model divisible by num_heads, a head dim that is a multiple of 8, and the attention's.
void layer_options_check(const LayerOptions& o);
void longnet_options_check(const LongNetOptions& o);
// The variant's layer counts, and the layer's.
void lm_options_check(const LongNetLMOptions& o);

// About how many parameters the model has (its embedding and output projection, each layer's
// attention and feed-forward weights, the decoder's cross-attention; biases and norms left out),
// in double so that no config overflows it: a lower bound for memory checks before the model is
// built.
double lm_parameter_estimate(const LongNetLMOptions& o);

// xPos's reference block (xpos.h): the largest segment length clipped to global_len when every
// clipped segment length divides it, else 0 (then the reference is the sequence's centre).
// Assumes global_len >= 1 and segment lengths >= 1.
int64_t xpos_reference_block(int64_t global_len, const std::vector<int64_t>& segment_lengths);
constexpr int64_t kXposScaleBase = 512;  // xPos's scale base (torchscale's)
// The precision xPos's scaled q and k are computed in: float16 itself; bfloat16 and float32 in
// float32; float64.
enum class XposPrecision { kFloat16, kFloat32, kFloat64 };
// Throws OptionsError (field "segment_lengths", related "seq_len") unless xPos's scales for a
// sequence of global_len tokens, zeta_0^(-+|n - c| / scale_base) up to the largest |n - c| (half
// the reference block, or half the sequence when there is none), stay well inside the range of
// `precision`: beyond it keys overflow and queries underflow, silently. Without the causal mask a
// query also reads keys after it, and q' . k' grows as zeta_0^(-(m - n) / scale_base): then the
// reach is the whole block less one (the sequence less one without a block).
void xpos_scales_check(int64_t global_len, const std::vector<int64_t>& segment_lengths,
                       XposPrecision precision, int64_t scale_base = kXposScaleBase,
                       bool causal = true);

// Checks every field that `visit` walks against its spec; the check functions above start with
// it. `owner` prefixes messages ("LongNetLM options").
void options_check_fields(const std::string& owner,
                          const std::function<void(OptionVisitor&)>& visit);

}  // namespace longnet
