// Per-channel sums of a channels-last tensor in one pass, as an XLA FFI handler:
//
//   channel_sums(a, b) -> s,   s[0, c] = sum_r a[r, c],   s[1, c] = sum_r a[r, c] * b[r, c]
//
// over every row r (every index of a and b but the last, the channel). Batch norm's statistics
// are (a, b) = (x, x): the sums of x and of x^2; its gradient needs (a, b) = (dy, x). XLA's CPU
// backend computes such a pair as two reductions, two passes over a tensor that is usually far
// out of cache; this reads it once.
//
// Leading dimensions of s beyond its two are a batch of independent tensors (jax.vmap with
// vmap_method="broadcast_all": a and b carry the same leading dimensions). The rows of each are
// split into chunks run on XLA's intra-op thread pool (ffi_job.h); each chunk sums blocks of
// kBlockRows rows in float32 and adds the block sums to float64 totals, and the chunks' totals
// are added in chunk order, so the result does not depend on which thread ran what.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "xla/ffi/api/ffi.h"
#include "ffi_job.h"

namespace ffi = xla::ffi;

namespace {

constexpr int64_t kBlockRows = 64;
// Below this many bytes of a and b per chunk, a second chunk costs more than it saves.
constexpr int64_t kMinChunkBytes = int64_t{1} << 20;

// Adds the sums of rows [0, rows) of a and a * b (row stride = channels) to s and q.
__attribute__((target_clones("avx512f", "avx2", "default")))
void SumRows(const float* __restrict a, const float* __restrict b, int64_t rows,
             int64_t channels, double* __restrict s, double* __restrict q,
             float* __restrict fs, float* __restrict fq) {
  for (int64_t r0 = 0; r0 < rows; r0 += kBlockRows) {
    std::fill(fs, fs + channels, 0.0f);
    std::fill(fq, fq + channels, 0.0f);
    const int64_t r1 = std::min(rows, r0 + kBlockRows);
    for (int64_t r = r0; r < r1; ++r) {
      const float* ar = a + r * channels;
      const float* br = b + r * channels;
#pragma omp simd
      for (int64_t c = 0; c < channels; ++c) {
        fs[c] += ar[c];
        fq[c] += ar[c] * br[c];
      }
    }
    for (int64_t c = 0; c < channels; ++c) {
      s[c] += fs[c];
      q[c] += fq[c];
    }
  }
}

struct Call {
  const float* a;
  const float* b;
  float* out;
  int64_t members, rows, channels, parts;
  std::vector<double> totals;  // [member, part, 2, channels]

  void Item(int64_t index) {
    const int64_t member = index / parts, part = index % parts;
    const int64_t begin = rows * part / parts, end = rows * (part + 1) / parts;
    const int64_t offset = (member * rows + begin) * channels;
    double* s = totals.data() + index * 2 * channels;
    std::vector<float> scratch(2 * channels);
    SumRows(a + offset, b + offset, end - begin, channels, s, s + channels, scratch.data(),
            scratch.data() + channels);
  }

  void Last() {
    for (int64_t m = 0; m < members; ++m) {
      for (int64_t k = 0; k < 2 * channels; ++k) {
        double sum = 0.0;
        for (int64_t p = 0; p < parts; ++p) sum += totals[((m * parts + p) * 2) * channels + k];
        out[m * 2 * channels + k] = static_cast<float>(sum);
      }
    }
  }
};

ffi::Future ChannelSums(ffi::ThreadPool pool, ffi::AnyBuffer a, ffi::AnyBuffer b,
                        ffi::Result<ffi::AnyBuffer> out) {
  for (auto dt : {a.element_type(), b.element_type(), out->element_type()}) {
    if (dt != ffi::DataType::F32) {
      return ganjax::Failed(
          ffi::Error::InvalidArgument("channel_sums: only float32 is supported"));
    }
  }
  const auto ad = a.dimensions(), bd = b.dimensions(), od = out->dimensions();
  const size_t lead = od.size() - 2;
  if (od.size() < 2 || ad.size() < lead + 2 || !std::equal(ad.begin(), ad.end(), bd.begin(),
                                                           bd.end()) ||
      od[lead] != 2 || od[lead + 1] != ad.back() ||
      !std::equal(od.begin(), od.begin() + lead, ad.begin())) {
    return ganjax::Failed(ffi::Error::InvalidArgument(
        "channel_sums: a and b must have one shape [..., rows..., C] and the result [..., 2, C]"));
  }
  auto call = std::make_shared<Call>();
  Call& c = *call;
  c.members = 1;
  for (size_t i = 0; i < lead; ++i) c.members *= od[i];
  c.channels = ad.back();
  c.rows = c.channels == 0 || c.members == 0
               ? 0 : static_cast<int64_t>(a.element_count()) / (c.members * c.channels);
  c.a = static_cast<const float*>(a.untyped_data());
  c.b = static_cast<const float*>(b.untyped_data());
  c.out = static_cast<float*>(out->untyped_data());
  const int64_t threads = std::max<int64_t>(1, pool.num_threads());
  const int64_t bytes = 2 * c.rows * c.channels * static_cast<int64_t>(sizeof(float));
  // Members shared evenly by the threads run whole; otherwise each is split into row chunks.
  c.parts = c.members % threads == 0
                ? 1 : std::clamp<int64_t>(bytes / kMinChunkBytes, 1, threads);
  c.totals.assign(c.members * c.parts * 2 * c.channels, 0.0);
  auto job = std::make_shared<ganjax::Job>(
      "channel_sums", c.members * c.parts, [call](int64_t index) { call->Item(index); },
      [call] { call->Last(); });
  return job->Start(pool, threads);
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(GanjaxChannelSums, ChannelSums,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>());
