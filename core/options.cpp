// The options spine (see options.h): the schema of every model option and the checks that own
// its rules. Plain C++ (no LibTorch), so that the config fuzzer links it alone.
#include "longnet/core/options.h"

#include "longnet/core/text.h"

#include <algorithm>
#include <cfloat>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <sstream>

namespace longnet {
namespace {

// Shortest text that reads back to the same double ("1e-05", "0.5", "12").
std::string number_text(double v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (v == std::floor(v) && std::fabs(v) < 1e18) return std::to_string(static_cast<int64_t>(v));
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

// Checks values against their specs; throws OptionsError for the first that is out.
class CheckVisitor : public OptionVisitor {
 public:
  CheckVisitor(std::string owner, std::string prefix)
      : owner_(std::move(owner)), prefix_(std::move(prefix)) {}
  void field(const char* name, int64_t& v, const OptionSpec& s) override { whole(name, v, s); }
  void field(const char* name, double& v, const OptionSpec& s) override {
    if (!std::isfinite(v))
      throw OptionsError(owner_, prefix_ + name, number_text(v) + " is not a finite number");
    number(name, v, number_text(v), s);
  }
  void field(const char*, bool&, const OptionSpec&) override {}
  void field(const char* name, std::string& v, const OptionSpec& s) override {
    if (!s.choices.empty() && std::find(s.choices.begin(), s.choices.end(), v) == s.choices.end())
      throw OptionsError(owner_, prefix_ + name,
                         "'" + v + "' is not one of " + join(s.choices, ", "));
    if (v.empty() && !s.allow_empty)
      throw OptionsError(owner_, prefix_ + name, "must not be empty");
  }
  void field(const char* name, std::vector<int64_t>& v, const OptionSpec& s) override {
    list_size(name, v.size(), s);
    for (size_t i = 0; i < v.size(); ++i)
      whole((std::string(name) + "[" + std::to_string(i) + "]").c_str(), v[i], s);
  }
  void field(const char* name, std::vector<double>& v, const OptionSpec& s) override {
    list_size(name, v.size(), s);
    for (size_t i = 0; i < v.size(); ++i) {
      const std::string item = std::string(name) + "[" + std::to_string(i) + "]";
      if (!std::isfinite(v[i]))
        throw OptionsError(owner_, prefix_ + item, number_text(v[i]) + " is not a finite number");
      number(item.c_str(), v[i], number_text(v[i]), s);
    }
  }

 private:
  void number(const char* name, double v, const std::string& shown, const OptionSpec& s) {
    if (!s.contains(v))
      throw OptionsError(owner_, prefix_ + name,
                         shown + " is out of range; it must be " + s.range_text());
  }
  void whole(const char* name, int64_t v, const OptionSpec& s) {
    if (!s.contains_whole(v))
      throw OptionsError(owner_, prefix_ + name,
                         std::to_string(v) + " is out of range; it must be " + s.range_text());
  }
  void list_size(const char* name, size_t n, const OptionSpec& s) {
    if (s.list_size != 0 && n != s.list_size)
      throw OptionsError(
          owner_, prefix_ + name,
          "expected " + std::to_string(s.list_size) + " values, got " + std::to_string(n));
    if (n == 0 && !s.allow_empty)
      throw OptionsError(owner_, prefix_ + name, "is empty; give at least one value");
  }
  std::string owner_, prefix_;
};

// The head counts closest to `wanted` that give a whole head dim that is a multiple of 8.
std::string heads_that_work(int64_t d_model, int64_t wanted) {
  std::vector<int64_t> ok;
  for (int64_t h = 1; h <= std::min<int64_t>(d_model, 1 << 16); ++h)
    if (d_model % h == 0 && (d_model / h) % 8 == 0) ok.push_back(h);
  if (ok.empty())
    return "no num_heads works: d_model must be a multiple of 8 (e.g. " +
           std::to_string((d_model + 7) / 8 * 8) + ")";
  std::stable_sort(ok.begin(), ok.end(), [&](int64_t a, int64_t b) {
    return std::llabs(a - wanted) < std::llabs(b - wanted);
  });
  ok.resize(std::min<size_t>(ok.size(), 4));
  std::sort(ok.begin(), ok.end());
  std::ostringstream s;
  s << "num_heads in {";
  for (size_t i = 0; i < ok.size(); ++i)
    s << (i ? ", " : "") << ok[i] << " (head dim " << d_model / ok[i] << ")";
  s << "} would work";
  return s.str();
}

}  // namespace

// ---- specs -----------------------------------------------------------------------------------

std::string OptionSpec::range_text() const {
  if (max == std::numeric_limits<double>::infinity())
    return std::string(min_open ? "> " : ">= ") + number_text(min);
  if (!min_open && !max_open) return ">= " + number_text(min) + " and <= " + number_text(max);
  return std::string("in ") + (min_open ? "(" : "[") + number_text(min) + ", " + number_text(max) +
         (max_open ? ")" : "]");
}

OptionSpec spec_range(double min, double max) {
  OptionSpec s;
  s.min = min;
  s.max = max;
  return s;
}
OptionSpec spec_at_least(double min) {
  return spec_range(min, std::numeric_limits<double>::infinity());
}
OptionSpec spec_above(double min, double max) {
  OptionSpec s = spec_range(min, max);
  s.min_open = true;
  return s;
}
OptionSpec spec_half_open(double min, double max) {
  OptionSpec s = spec_range(min, max);
  s.max_open = true;
  return s;
}
OptionSpec spec_choices(std::vector<std::string> choices) {
  OptionSpec s;
  s.choices = std::move(choices);
  return s;
}

// ---- the schema ------------------------------------------------------------------------------

void options_visit(EngineOptions& o, OptionVisitor& v) {
  v.field("backend", o.backend, spec_choices({"cudnn", "flash"}));
  v.field("streams", o.streams, spec_range(1, 16));
  v.field("fused_merge", o.fused_merge, {});
  v.field("chunk_above", o.chunk_above, spec_range(-1, double(kMaxTokens) * (1 << 20)));
  v.field("memory_trace", o.memory_trace, {});
}

void options_visit(DilatedAttentionOptions& o, OptionVisitor& v) {
  v.field("segment_lengths", o.segment_lengths, spec_range(1, double(kMaxTokens)));
  v.field("dilation_rates", o.dilation_rates, spec_range(1, double(kMaxTokens)));
}

void options_visit(LayerOptions& o, OptionVisitor& v) {
  v.field("d_model", o.d_model, spec_range(1, 1 << 20));
  v.field("num_heads", o.num_heads, spec_range(1, 1 << 16));
  v.field("dim_feedforward", o.dim_feedforward, spec_range(1, 1 << 22));
  options_visit(o.attention, v);
  v.field("dropout", o.dropout, spec_half_open(0, 1));
  v.field("activation", o.activation, spec_choices({"gelu", "relu"}));
  v.field("layer_norm_eps", o.layer_norm_eps, spec_range(FLT_MIN, 1));  // not 0 in float32
}

void options_visit(LongNetLMOptions& o, OptionVisitor& v) {
  v.field("variant", o.variant, spec_choices({"decoder_only", "encoder_decoder"}));
  v.field("vocab_size", o.vocab_size, spec_range(1, double(INT32_MAX)));
  v.field("num_layers", o.num_layers, spec_range(1, 1 << 16));
  v.field("num_encoder_layers", o.num_encoder_layers, spec_range(0, 1 << 16));
  options_visit(o.layer, v);
  v.field("activation_checkpointing", o.activation_checkpointing, {});
  v.field("checkpoint_layers", o.checkpoint_layers, spec_range(0, 1 << 16));
}

// ---- checks ----------------------------------------------------------------------------------

OptionsError::OptionsError(const std::string& owner, std::string field, std::string detail,
                           std::vector<std::string> related)
    : std::invalid_argument(owner + ": " + field + ": " + detail),
      field_(std::move(field)),
      detail_(std::move(detail)),
      related_(std::move(related)) {}

int64_t xpos_reference_block(int64_t global_len, const std::vector<int64_t>& segment_lengths) {
  int64_t W = 0;
  for (int64_t w : segment_lengths) W = std::max(W, std::min(w, global_len));
  for (int64_t w : segment_lengths)
    if (W % std::min(w, global_len) != 0) return 0;
  return W;
}

void xpos_scales_check(int64_t global_len, const std::vector<int64_t>& segment_lengths,
                       XposPrecision precision, int64_t scale_base, bool causal) {
  const int64_t W = xpos_reference_block(global_len, segment_lengths);
  const int64_t span = W > 0 ? W : global_len;  // tokens sharing one reference position
  // Causal: the largest |n - c| (the block's first token); otherwise the farthest key after a
  // query, span - 1 tokens on.
  const int64_t reach = causal ? span / 2 : span - 1;
  // The largest factor is zeta_0^(-reach / scale_base), zeta_0 = 0.4 / 1.4; its inverse must stay
  // a normal number too, and the scaled q and k hold |x| times it. The limits leave that room.
  const bool half = precision == XposPrecision::kFloat16,
             f64 = precision == XposPrecision::kFloat64;
  const double log_zeta = std::log(1.4 / 0.4), log_f32 = std::log(1e36);
  const double limit = half ? 1e3 : f64 ? 1e300 : 1e36;
  const std::string range = half  ? "float16's range (max 65504)"
                            : f64 ? "float64's range"
                                  : "float32's range";
  const double log_top = double(reach) / double(scale_base) * log_zeta;
  if (log_top < std::log(limit)) return;
  // The longest block that fits: reach <= max_reach.
  auto longest = [&](double log_limit) {
    const auto max_reach =
        static_cast<int64_t>(std::floor(log_limit / log_zeta * double(scale_base)));
    return causal ? 2 * max_reach + 1 : max_reach + 1;
  };
  const std::string fix =
      half && log_top < log_f32
          ? "bfloat16 or float32 inputs"
          : "segment lengths that each divide the largest, the largest at most " +
                std::to_string(longest(std::log(limit))) + " tokens";
  throw OptionsError(
      "xPos", "segment_lengths",
      "the scales reach 10^" + std::to_string(int64_t(log_top / std::log(10.0))) + " at " +
          (causal ? "local position +-" + std::to_string(reach)
                  : "a distance of " + std::to_string(reach) +
                        " tokens (attention is not causal: a query reads keys after it)") +
          " for a sequence of " + std::to_string(global_len) +
          " tokens with these segment lengths (" +
          (W > 0 ? "the largest segment is " + std::to_string(W)
                 : "the segment lengths do not each divide the largest: the whole sequence shares "
                   "one reference") +
          "), beyond " + range + ": keys would overflow and queries vanish. Use " + fix,
      {"seq_len"});
}

void options_check_fields(const std::string& owner,
                          const std::function<void(OptionVisitor&)>& visit) {
  CheckVisitor check(owner, "");
  visit(check);
}

void engine_options_check(const EngineOptions& o_in) {
  EngineOptions o = o_in;  // the visit takes references; nothing is changed
  CheckVisitor check("engine options", "engine.");
  options_visit(o, check);
}

std::string engine_options_cpu_note(const EngineOptions& o,
                                    const std::function<std::string(const std::string&)>& name_of) {
  const EngineOptions d;
  std::string names;
  for (const auto& [field, changed] :
       {std::pair<const char*, bool>{"backend", o.backend != d.backend},
        {"streams", o.streams != d.streams},
        {"fused_merge", o.fused_merge != d.fused_merge},
        {"chunk_above", o.chunk_above != d.chunk_above},
        {"memory_trace", o.memory_trace != d.memory_trace}})
    if (changed) names += (names.empty() ? "" : ", ") + name_of(field);
  return names.empty() ? ""
                       : names +
                             " act only on a GPU; this run is on the CPU, where they change "
                             "nothing";
}

void dilated_options_check(const DilatedAttentionOptions& o_in) {
  const std::string owner = "dilated attention";
  DilatedAttentionOptions o = o_in;
  const auto& w = o.segment_lengths;
  const auto& r = o.dilation_rates;
  if (w.size() != r.size())
    throw OptionsError(owner, "dilation_rates",
                       "segment_lengths " + ints_text(w) + " and dilation_rates " + ints_text(r) +
                           " must have the same length (one rate per segment length), got " +
                           std::to_string(w.size()) + " and " + std::to_string(r.size()),
                       {"segment_lengths"});
  CheckVisitor check(owner, "");
  options_visit(o, check);
  if (o.softmax_scale && !std::isfinite(*o.softmax_scale))
    throw OptionsError(owner, "softmax_scale",
                       "must be a finite number, got " + number_text(*o.softmax_scale));
  // (the kernels scale in float32, where a larger one is inf and every output NaN)
  if (o.softmax_scale && std::fabs(*o.softmax_scale) > FLT_MAX)
    throw OptionsError(owner, "softmax_scale",
                       number_text(*o.softmax_scale) +
                           " is beyond float32's range (3.4e38), which the attention computes in");
  if (!(o.dropout >= 0.0 && o.dropout < 1.0))
    throw OptionsError(owner, "dropout", "must be in [0, 1), got " + number_text(o.dropout));
  engine_options_check(o.engine);
}

void layer_options_check(const LayerOptions& o_in) {
  const std::string owner = "layer options";
  LayerOptions o = o_in;
  if (o.attention.segment_lengths.size() != o.attention.dilation_rates.size())
    dilated_options_check(o.attention);  // names both lists
  options_check_fields(owner, [&](OptionVisitor& v) { options_visit(o, v); });
  if (o.d_model % o.num_heads != 0)
    throw OptionsError(owner, "num_heads",
                       std::to_string(o.num_heads) +
                           " does not divide d_model = " + std::to_string(o.d_model) + "; " +
                           heads_that_work(o.d_model, o.num_heads),
                       {"d_model"});
  const int64_t head_dim = o.d_model / o.num_heads;
  if (head_dim % 8 != 0)
    throw OptionsError(owner, "num_heads",
                       "the head dim d_model / num_heads = " + std::to_string(o.d_model) + " / " +
                           std::to_string(o.num_heads) + " = " + std::to_string(head_dim) +
                           " is not a multiple of 8 (the attention kernels need it); " +
                           heads_that_work(o.d_model, o.num_heads) +
                           ", or with that many heads d_model a multiple of " +
                           std::to_string(8 * o.num_heads),
                       {"d_model"});
  DilatedAttentionOptions a = o.attention;
  a.dropout = o.dropout;
  dilated_options_check(a);
}

void longnet_options_check(const LongNetOptions& o) {
  const std::string owner = "LongNet options";
  if (o.num_encoder_layers < 1 || o.num_encoder_layers > (1 << 16))
    throw OptionsError(
        owner, "num_encoder_layers",
        std::to_string(o.num_encoder_layers) + " is out of range; it must be in " + "[1, 65536]");
  if (o.num_decoder_layers < 1 || o.num_decoder_layers > (1 << 16))
    throw OptionsError(
        owner, "num_decoder_layers",
        std::to_string(o.num_decoder_layers) + " is out of range; it must be in " + "[1, 65536]");
  layer_options_check(o.layer);
}

double lm_parameter_estimate(const LongNetLMOptions& o) {
  const double d = double(o.layer.d_model), ff = double(o.layer.dim_feedforward);
  const double layers = double(o.num_layers) + double(o.num_encoder_layers);
  const double cross = o.variant == "encoder_decoder" ? double(o.num_layers) * 4 * d * d : 0;
  return 2 * double(o.vocab_size) * d + layers * (4 * d * d + 2 * d * ff) + cross;
}

void lm_options_check(const LongNetLMOptions& o_in) {
  const std::string owner = "LongNetLM options";
  LongNetLMOptions o = o_in;
  layer_options_check(o.layer);
  options_check_fields(owner, [&](OptionVisitor& v) { options_visit(o, v); });
  if (o.variant == "encoder_decoder" && o.num_encoder_layers < 1)
    throw OptionsError(owner, "num_encoder_layers",
                       "is 0 but variant is encoder_decoder; set num_encoder_layers >= 1 (e.g. "
                       "12) or use variant decoder_only",
                       {"variant"});
  if (o.variant == "decoder_only" && o.num_encoder_layers != 0)
    throw OptionsError(owner, "num_encoder_layers",
                       "is " + std::to_string(o.num_encoder_layers) +
                           " but variant is decoder_only; set it to 0 or use variant "
                           "encoder_decoder",
                       {"variant"});
  if (o.activation_checkpointing && o.variant != "decoder_only")
    throw OptionsError(owner, "activation_checkpointing",
                       "is supported for variant decoder_only; turn it off for encoder_decoder",
                       {"variant"});
  if (o.checkpoint_layers != 0 && !o.activation_checkpointing)
    throw OptionsError(owner, "checkpoint_layers",
                       "is " + std::to_string(o.checkpoint_layers) +
                           " but activation_checkpointing is off; set activation_checkpointing: "
                           "true, or checkpoint_layers: 0",
                       {"activation_checkpointing"});
  if (o.checkpoint_layers > o.num_layers)
    throw OptionsError(owner, "checkpoint_layers",
                       "is " + std::to_string(o.checkpoint_layers) + " but the model has " +
                           std::to_string(o.num_layers) +
                           " decoder layers; use at most num_layers (0 also means all)",
                       {"num_layers"});
}

}  // namespace longnet
