// 2-D convolutions on the CPU through oneDNN, exposed to JAX as XLA FFI handlers.
//
// Three handlers, one per pass of a convolution y = conv(x, w) with strides s and explicit
// padding (top, bottom, left, right); activations NHWC, kernels HWIO (JAX's layout):
//
//   onednn_conv_forward          (x, w)  -> y
//   onednn_conv_backward_data    (dy, w) -> dx   (also: the transposed convolution)
//   onednn_conv_backward_weights (x, dy) -> dw
//
// Leading dimensions beyond the four of NHWC / HWIO are a batch of independent convolutions
// (jax.vmap with vmap_method="broadcast_all"): every operand and the result carry the same
// leading dimensions. Primitive descriptors are built once per geometry and cached; kernels
// are reordered to (and kernel gradients from) oneDNN's preferred blocked layout on every
// call, once per call (not once per thread).
//
// Two algorithms, chosen by the caller per convolution (attribute `algorithm`): oneDNN's
// direct convolution primitives (0), or the im2col form (1): one GEMM per chunk over the
// matrix of input patches, col[(n, ho, wo), (kh, kw, c)], against the HWIO kernel read as a
// [KH*KW*C, F] matrix (dnnl_sgemm); the input gradient scatters its patch gradients back
// (col2im). The GEMM form is the faster one when the output images are small (few rows per
// image for the direct kernels to block over).
//
// Threads: each call splits its minibatch into one chunk per thread of XLA's intra-op pool
// and runs each chunk with single-threaded oneDNN on a pool thread (kernel gradients of the
// chunks are summed, in the blocked layout, before the one reorder back). oneDNN's own OpenMP
// team would compete with XLA's threads for the same cores, so its primitives are created, not
// only run, with one OpenMP thread (SingleThreaded). The handlers are asynchronous (they return
// an ffi::Future): the calling thread works on the chunks while any are unclaimed, then goes
// back to XLA's executor instead of waiting for a chunk another thread is still computing;
// the last chunk to finish completes the call (Job).
#include <Python.h>

#include <omp.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <type_traits>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"
#include "ffi_job.h"

namespace ffi = xla::ffi;
using dnnl::memory;
using Tag = dnnl::memory::format_tag;
using Type = dnnl::memory::data_type;

namespace {

using ganjax::Failed;
using ganjax::Job;
using ganjax::SingleThreaded;

enum Pass : int64_t { kForward = 0, kBackwardData = 1, kBackwardWeights = 2 };

dnnl::engine& Engine() {
  static dnnl::engine* engine = new dnnl::engine(dnnl::engine::kind::cpu, 0);
  return *engine;
}

// Primitives get their scratch memory from the caller: oneDNN's own ("library") scratchpad is
// shared by all primitives and not safe to use from two threads at once.
dnnl::primitive_attr Attributes() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

// One convolution geometry: oneDNN's logical dims (NCHW / OIHW) and the window.
struct Geometry {
  memory::dims src, wei, dst, strides, dilation, pad_l, pad_r;

  memory::desc Src(Tag tag = Tag::nhwc) const { return {src, Type::f32, tag}; }
  memory::desc Wei(Tag tag = Tag::hwio) const { return {wei, Type::f32, tag}; }
  memory::desc Dst(Tag tag = Tag::nhwc) const { return {dst, Type::f32, tag}; }

  dnnl::convolution_forward::primitive_desc Forward() const {
    return {Engine(), dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
            Src(), Wei(Tag::any), Dst(), strides, dilation, pad_l, pad_r, Attributes()};
  }
};


// The cached primitive of one (pass, geometry), with the kernel layout it wants.
struct Plan {
  dnnl::primitive conv;
  memory::desc scratchpad;
  memory::desc kernel;  // oneDNN's layout of the weights / weight gradient
  bool reorder = false;  // kernel differs from plain HWIO
  // When reorder: plain -> blocked kernel (forward passes) or blocked -> plain kernel gradient
  // (to_plain).
  memory::desc plain;
  bool to_plain = false;
  dnnl::reorder kernel_reorder;
  memory::desc kernel_reorder_scratchpad;
};

using Key = std::vector<int64_t>;


// A plan's primitive, kernel layout and scratchpad, from its primitive descriptor.
template <typename Primitive, typename Descriptor>
void Fill(Plan& plan, const Descriptor& pd, const memory::desc& kernel) {
  plan.conv = Primitive(pd);
  plan.kernel = kernel;
  plan.scratchpad = pd.scratchpad_desc();
}

std::shared_ptr<const Plan> MakePlan(Pass pass, const Geometry& g) {
  SingleThreaded one_thread;  // its primitives run on one thread each (see Job)
  auto plan = std::make_shared<Plan>();
  auto forward = g.Forward();
  // The backward passes share the forward's geometry and take it as their hint.
  auto backward = [&](auto* tag) {
    using Descriptor = typename std::remove_pointer_t<decltype(tag)>::primitive_desc;
    return Descriptor(Engine(), dnnl::algorithm::convolution_direct, g.Src(), g.Wei(Tag::any),
                      g.Dst(), g.strides, g.dilation, g.pad_l, g.pad_r, forward, Attributes());
  };
  switch (pass) {
    case kForward:
      Fill<dnnl::convolution_forward>(*plan, forward, forward.weights_desc());
      break;
    case kBackwardData: {
      auto pd = backward(static_cast<dnnl::convolution_backward_data*>(nullptr));
      Fill<dnnl::convolution_backward_data>(*plan, pd, pd.weights_desc());
      break;
    }
    case kBackwardWeights: {
      auto pd = backward(static_cast<dnnl::convolution_backward_weights*>(nullptr));
      Fill<dnnl::convolution_backward_weights>(*plan, pd, pd.diff_weights_desc());
      break;
    }
  }
  plan->plain = g.Wei();
  plan->reorder = plan->kernel != plan->plain;
  if (plan->reorder) {
    const bool to_plain = plan->to_plain = pass == kBackwardWeights;
    dnnl::reorder::primitive_desc pd(Engine(), to_plain ? plan->kernel : plan->plain, Engine(),
                                     to_plain ? plan->plain : plan->kernel, Attributes());
    plan->kernel_reorder = dnnl::reorder(pd);
    plan->kernel_reorder_scratchpad = pd.scratchpad_desc();
  }
  return plan;
}

std::shared_ptr<const Plan> GetPlan(Pass pass, const Geometry& g) {
  static std::mutex* mu = new std::mutex;
  static auto* cache = new std::map<Key, std::shared_ptr<const Plan>>;
  Key key{pass};
  for (const auto* dims : {&g.src, &g.wei, &g.dst, &g.strides, &g.pad_l, &g.pad_r}) {
    key.insert(key.end(), dims->begin(), dims->end());
  }
  {
    std::lock_guard<std::mutex> lock(*mu);
    auto it = cache->find(key);
    if (it != cache->end()) return it->second;
  }
  auto plan = MakePlan(pass, g);  // outside the lock: creation can take milliseconds
  std::lock_guard<std::mutex> lock(*mu);
  return cache->emplace(key, plan).first->second;
}

// Splits a buffer's dimensions into (batch of leading dims, the trailing four).
std::pair<int64_t, std::array<int64_t, 4>> Split(ffi::Span<const int64_t> dims) {
  int64_t batch = 1;
  std::array<int64_t, 4> tail{};
  const size_t lead = dims.size() - 4;
  for (size_t i = 0; i < lead; ++i) batch *= dims[i];
  for (size_t i = 0; i < 4; ++i) tail[i] = dims[lead + i];
  return {batch, tail};
}

enum Algorithm : int64_t { kDirect = 0, kGemm = 1 };

struct Window {
  int64_t sh, sw, pt, pb, pl, pr;
  Algorithm algorithm;
};


// A buffer of at least `bytes` this thread keeps and reuses (slot 0: convolution scratchpads,
// 1: reorder scratchpads, 2: the im2col matrix), so no call pays for fresh pages.
char* ThreadScratch(size_t bytes, int slot) {
  thread_local std::array<std::vector<char>, 3> buffers;
  std::vector<char>& buffer = buffers[slot];
  if (buffer.size() < bytes) buffer.resize(bytes);
  return buffer.data();
}

memory ThreadBuffer(const memory::desc& desc, int slot) {
  return memory(desc, Engine(), ThreadScratch(desc.get_size(), slot));
}

// Kernel buffers of the calls in flight (blocked kernels, partial kernel gradients). A call's
// buffers live until its last work item ends, which may be after the call has returned and
// its thread has made the next call, so they are the call's, not its thread's; released
// buffers are kept by size (one per geometry recurs every step) and reused, so no call pays
// for fresh pages.
class BufferPool {
 public:
  using Buffer = std::unique_ptr<char, std::function<void(char*)>>;

  static Buffer Take(size_t bytes) {
    char* data = nullptr;
    {
      std::lock_guard<std::mutex> lock(Mutex());
      auto& free = Free()[bytes];
      if (!free.empty()) {
        data = free.back();
        free.pop_back();
      }
    }
    if (data == nullptr) data = static_cast<char*>(std::aligned_alloc(64, RoundUp(bytes)));
    if (data == nullptr) throw std::bad_alloc();
    return Buffer(data, [bytes](char* p) {
      std::lock_guard<std::mutex> lock(Mutex());
      Free()[bytes].push_back(p);
    });
  }

 private:
  static size_t RoundUp(size_t bytes) { return (std::max<size_t>(bytes, 1) + 63) / 64 * 64; }
  static std::mutex& Mutex() {
    static std::mutex* mu = new std::mutex;
    return *mu;
  }
  static std::map<size_t, std::vector<char*>>& Free() {
    static auto* free = new std::map<size_t, std::vector<char*>>;
    return *free;
  }
};

// Runs a plan's kernel reorder: plain -> blocked, or blocked -> plain for kernel gradients.
void ReorderKernel(const Plan& plan, void* plain_data, void* blocked_data) {
  dnnl::engine& engine = Engine();
  dnnl::stream stream(engine);
  memory p(plan.plain, engine, plain_data), b(plan.kernel, engine, blocked_data);
  memory scratch = ThreadBuffer(plan.kernel_reorder_scratchpad, 1);
  plan.kernel_reorder.execute(stream, {{DNNL_ARG_FROM, plan.to_plain ? b : p},
                                       {DNNL_ARG_TO, plan.to_plain ? p : b},
                                       {DNNL_ARG_SCRATCHPAD, scratch}});
  stream.wait();
}

// Image ranges [begin, end) splitting a minibatch of n into at most `parts` near-equal chunks.
std::vector<std::pair<int64_t, int64_t>> Chunks(int64_t n, int64_t parts) {
  parts = std::max<int64_t>(1, std::min(parts, n));
  std::vector<std::pair<int64_t, int64_t>> chunks;
  for (int64_t j = 0, begin = 0; j < parts; ++j) {
    const int64_t end = begin + n / parts + (j < n % parts ? 1 : 0);
    chunks.emplace_back(begin, end);
    begin = end;
  }
  return chunks;
}

// The im2col form of one chunk: n images of h x w x c, a kh x kw x c x f kernel, outputs of
// ho x wo x f.
struct Patches {
  int64_t n, h, w, c, kh, kw, f, ho, wo;
  Window win;

  int64_t Rows() const { return n * ho * wo; }
  int64_t Columns() const { return kh * kw * c; }

  // Calls fn(patch offset, image offset) for each (n, ho, wo, kh, kw): the offsets of the c
  // floats of col[(n, ho, wo), (kh, kw, :)] and of x[n, ho*sh + kh - pt, wo*sw + kw - pl, :],
  // the latter -1 where the tap falls into the padding.
  template <typename Fn>
  void ForEachTap(Fn fn) const {
    int64_t patch = 0;
    for (int64_t b = 0; b < n; ++b)
      for (int64_t oh = 0; oh < ho; ++oh)
        for (int64_t ow = 0; ow < wo; ++ow)
          for (int64_t i = 0; i < kh; ++i) {
            const int64_t ih = oh * win.sh + i - win.pt;
            for (int64_t j = 0; j < kw; ++j, patch += c) {
              const int64_t iw = ow * win.sw + j - win.pl;
              const bool inside = ih >= 0 && ih < h && iw >= 0 && iw < w;
              fn(patch, inside ? ((b * h + ih) * w + iw) * c : -1);
            }
          }
  }

  void Im2Col(const float* x, float* col) const {
    ForEachTap([&](int64_t p, int64_t i) {
      if (i < 0) {
        std::fill_n(col + p, c, 0.f);
      } else {
        std::copy_n(x + i, c, col + p);
      }
    });
  }

  void Col2Im(const float* col, float* x) const {
    std::fill_n(x, n * h * w * c, 0.f);
    ForEachTap([&](int64_t p, int64_t i) {
      if (i < 0) return;
      for (int64_t k = 0; k < c; ++k) x[i + k] += col[p + k];
    });
  }
};

// One pass of one chunk in the im2col form (row-major GEMMs, M = n*ho*wo, K = kh*kw*c):
// forward y = col(x) w; backward data dx = col2im(dy w^T); backward weights dw = col(x)^T dy.
void GemmChunk(Pass pass, const Patches& s, float* x, float* y, float* w) {
  const int64_t m = s.Rows(), k = s.Columns(), f = s.f;
  float* col = reinterpret_cast<float*>(ThreadScratch(m * k * sizeof(float), 2));
  auto check = [](dnnl::status status) {
    if (status != dnnl::status::success) throw std::runtime_error("dnnl_sgemm failed");
  };
  switch (pass) {
    case kForward:
      s.Im2Col(x, col);
      check(dnnl::sgemm('N', 'N', m, f, k, 1.f, col, k, w, f, 0.f, y, f));
      break;
    case kBackwardData:
      check(dnnl::sgemm('N', 'T', m, k, f, 1.f, y, f, w, f, 0.f, col, k));
      s.Col2Im(col, x);
      break;
    case kBackwardWeights:
      s.Im2Col(x, col);
      check(dnnl::sgemm('T', 'N', k, f, m, 1.f, col, k, y, f, 0.f, w, f));
      break;
  }
}

// One call's work and everything it reads: owned by the call's job, so it outlives the
// handler when the call completes asynchronously.
struct Call {
  Pass pass;
  Window win;
  std::array<int64_t, 4> x, w, y;
  int64_t batch, x_image, y_image, w_size;
  float *px, *py, *pw;
  std::vector<std::pair<int64_t, int64_t>> chunks;
  // The direct primitives' geometries and plans, one per chunk (none for the GEMM form).
  std::vector<Geometry> geometries;
  std::vector<std::shared_ptr<const Plan>> plans;
  int64_t parts = 1;
  bool gemm = false, reorder = false, fused = false;
  size_t kernel_bytes = 0;
  // The kernel memory each (batch element i, chunk j) convolution reads or writes: for the
  // forward passes one blocked kernel per i; for kernel gradients one buffer per (i, j),
  // except that in plain layout chunk 0 writes the result directly.
  std::vector<std::vector<char*>> kernels;
  std::vector<BufferPool::Buffer> buffers;

  char* NewBuffer() {
    buffers.push_back(BufferPool::Take(kernel_bytes));
    return buffers.back().get();
  }

  // One reorder per batch element and call, shared by the chunks.
  void Reorder(int64_t i) const {
    ReorderKernel(*plans[0], pw + i * w_size, kernels[i][0]);
  }

  void ConvolveChunk(int64_t index) const {
    const int64_t i = index / parts, j = index % parts;
    const auto [begin, end] = chunks[j];
    float* chunk_x = px + (i * x[0] + begin) * x_image;
    float* chunk_y = py + (i * y[0] + begin) * y_image;
    if (gemm) {
      const Patches patches{end - begin, x[1], x[2], x[3], w[0], w[1], w[3], y[1], y[2], win};
      GemmChunk(pass, patches, chunk_x, chunk_y, reinterpret_cast<float*>(kernels[i][j]));
      return;
    }
    const Plan& plan = *plans[j];
    const Geometry& g = geometries[j];
    dnnl::engine& engine = Engine();
    dnnl::stream stream(engine);
    memory src(g.Src(), engine, chunk_x);
    memory dst(g.Dst(), engine, chunk_y);
    memory wei(plan.kernel, engine, kernels[i][j]);
    memory scratch = ThreadBuffer(plan.scratchpad, 0);
    switch (pass) {
      case kForward:
        plan.conv.execute(stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei},
                                   {DNNL_ARG_DST, dst}, {DNNL_ARG_SCRATCHPAD, scratch}});
        break;
      case kBackwardData:
        plan.conv.execute(stream, {{DNNL_ARG_DIFF_DST, dst}, {DNNL_ARG_WEIGHTS, wei},
                                   {DNNL_ARG_DIFF_SRC, src}, {DNNL_ARG_SCRATCHPAD, scratch}});
        break;
      case kBackwardWeights:
        plan.conv.execute(stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, dst},
                                   {DNNL_ARG_DIFF_WEIGHTS, wei}, {DNNL_ARG_SCRATCHPAD, scratch}});
        break;
    }
    stream.wait();
  }

  // A work item: one chunk of one batch element. With one chunk per batch element, its kernel
  // reorders run in the same item (no separate pass over the batch).
  void Item(int64_t index) const {
    if (fused && pass != kBackwardWeights) Reorder(index);
    ConvolveChunk(index);
    if (fused && pass == kBackwardWeights) Reorder(index);
  }

  // After the last item, kernel gradients only: sums the chunks' gradients into chunk 0's
  // buffer (the same layout, padding included) and reorders the sum back to HWIO.
  void Last() const {
    if (pass != kBackwardWeights) return;
    const int64_t floats = static_cast<int64_t>(kernel_bytes / sizeof(float));
    for (int64_t i = 0; i < batch; ++i) {
      float* sum = reinterpret_cast<float*>(kernels[i][0]);
      for (int64_t p = 1; p < parts; ++p) {
        const float* part = reinterpret_cast<const float*>(kernels[i][p]);
        for (int64_t k = 0; k < floats; ++k) sum[k] += part[k];
      }
      if (reorder && !fused) Reorder(i);
    }
  }
};

// Plans one call (on the calling thread, which owns nothing the items need) and starts its job.
ffi::Future Run(Pass pass, ffi::ThreadPool pool, ffi::AnyBuffer a, ffi::AnyBuffer b,
                ffi::Result<ffi::AnyBuffer> out, const Window& win) {
  for (auto dt : {a.element_type(), b.element_type(), out->element_type()}) {
    if (dt != ffi::DataType::F32) {
      return Failed(ffi::Error::InvalidArgument("onednn_conv: only float32 is supported"));
    }
  }
  if (a.dimensions().size() < 4 || a.dimensions().size() != b.dimensions().size() ||
      a.dimensions().size() != out->dimensions().size()) {
    return Failed(ffi::Error::InvalidArgument(
        "onednn_conv: operands need rank >= 4 and equal ranks"));
  }
  auto call = std::make_shared<Call>();
  Call& c = *call;
  c.pass = pass;
  c.win = win;
  // Which buffer holds x (NHWC), w (HWIO) and y (NHWC) in this pass.
  ffi::Span<const int64_t> xd = a.dimensions(), wd = b.dimensions(), yd = out->dimensions();
  if (pass == kBackwardData) std::swap(xd, yd);  // (dy, w) -> dx
  if (pass == kBackwardWeights) std::swap(wd, yd);  // (x, dy) -> dw
  int64_t batch_w, batch_y;
  std::tie(c.batch, c.x) = Split(xd);
  std::tie(batch_w, c.w) = Split(wd);
  std::tie(batch_y, c.y) = Split(yd);
  if (c.batch != batch_w || c.batch != batch_y) {
    return Failed(ffi::Error::InvalidArgument(
        "onednn_conv: operands have different leading dims"));
  }
  const auto& x = c.x;
  const auto& w = c.w;
  const auto& y = c.y;
  c.x_image = x[1] * x[2] * x[3];
  c.y_image = y[1] * y[2] * y[3];
  c.w_size = w[0] * w[1] * w[2] * w[3];
  float* pa = static_cast<float*>(a.untyped_data());
  float* pb = static_cast<float*>(b.untyped_data());
  float* po = static_cast<float*>(out->untyped_data());
  c.px = pass == kForward || pass == kBackwardWeights ? pa : po;
  c.py = pass == kForward ? po : pass == kBackwardWeights ? pb : pa;
  c.pw = pass == kBackwardWeights ? po : pb;

  const int64_t threads = std::max<int64_t>(1, pool.num_threads());
  // A leading batch (the members of a vmapped population) that the threads can share evenly
  // is split by member: one item per member, its whole minibatch, with no partial kernel
  // gradients to sum. Otherwise each minibatch is split into one chunk per thread.
  c.chunks = Chunks(x[0], c.batch % threads == 0 ? 1 : threads);
  auto geometry = [&](int64_t images) {
    Geometry g;
    g.src = {images, x[3], x[1], x[2]};
    g.wei = {w[3], w[2], w[0], w[1]};
    g.dst = {images, y[3], y[1], y[2]};
    g.strides = {win.sh, win.sw};
    g.dilation = {0, 0};
    g.pad_l = {win.pt, win.pl};
    g.pad_r = {win.pb, win.pr};
    return g;
  };
  c.gemm = win.algorithm == kGemm;
  try {
    if (!c.gemm) {
      for (const auto& [begin, end] : c.chunks) {
        c.geometries.push_back(geometry(end - begin));
        c.plans.push_back(GetPlan(pass, c.geometries.back()));
      }
      // The chunks share one blocked kernel, so their primitives must agree on its layout
      // (chunk sizes differ by one image at most; if the layouts differ, one chunk).
      for (const auto& plan : c.plans) {
        if (plan->kernel != c.plans[0]->kernel) {
          c.chunks = Chunks(x[0], 1);
          c.geometries = {geometry(x[0])};
          c.plans = {GetPlan(pass, c.geometries[0])};
          break;
        }
      }
    }
    c.parts = static_cast<int64_t>(c.chunks.size());
    c.reorder = !c.gemm && c.plans[0]->reorder;
    c.fused = c.reorder && c.parts == 1;
    c.kernel_bytes = c.reorder ? c.plans[0]->kernel.get_size() : c.w_size * sizeof(float);
    c.kernels.assign(c.batch, std::vector<char*>(c.parts));
    for (int64_t i = 0; i < c.batch; ++i) {
      char* result = reinterpret_cast<char*>(c.pw + i * c.w_size);
      for (int64_t j = 0; j < c.parts; ++j) {
        if (pass != kBackwardWeights) {
          c.kernels[i][j] = !c.reorder ? result : j == 0 ? c.NewBuffer() : c.kernels[i][0];
        } else {
          c.kernels[i][j] = !c.reorder && j == 0 ? result : c.NewBuffer();
        }
      }
    }
    // Kernels the chunks share are reordered before any chunk starts (on this thread).
    if (c.reorder && !c.fused && pass != kBackwardWeights) {
      SingleThreaded one_thread;
      for (int64_t i = 0; i < c.batch; ++i) c.Reorder(i);
    }
  } catch (const std::exception& e) {
    return Failed(ffi::Error::Internal(std::string("onednn_conv: ") + e.what()));
  }
  auto job = std::make_shared<Job>(
      "onednn_conv", c.batch * c.parts, [call](int64_t index) { call->Item(index); },
      [call] { call->Last(); });
  return job->Start(pool, threads);
}

template <Pass P>
ffi::Future Handler(ffi::ThreadPool pool, ffi::AnyBuffer a, ffi::AnyBuffer b,
                    ffi::Result<ffi::AnyBuffer> out, int64_t sh, int64_t sw, int64_t pt,
                    int64_t pb, int64_t pl, int64_t pr, int64_t algorithm) {
  if (algorithm != kDirect && algorithm != kGemm) {
    return Failed(ffi::Error::InvalidArgument(
        "onednn_conv: algorithm must be 0 (direct) or 1 (gemm)"));
  }
  return Run(P, pool, a, b, out,
             Window{sh, sw, pt, pb, pl, pr, static_cast<Algorithm>(algorithm)});
}

auto Binding() {
  return ffi::Ffi::Bind()
      .Ctx<ffi::ThreadPool>()
      .Arg<ffi::AnyBuffer>()
      .Arg<ffi::AnyBuffer>()
      .Ret<ffi::AnyBuffer>()
      .Attr<int64_t>("stride_h")
      .Attr<int64_t>("stride_w")
      .Attr<int64_t>("pad_top")
      .Attr<int64_t>("pad_bottom")
      .Attr<int64_t>("pad_left")
      .Attr<int64_t>("pad_right")
      .Attr<int64_t>("algorithm");
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(OnednnConvForward, Handler<kForward>, Binding());
XLA_FFI_DEFINE_HANDLER_SYMBOL(OnednnConvBackwardData, Handler<kBackwardData>, Binding());
XLA_FFI_DEFINE_HANDLER_SYMBOL(OnednnConvBackwardWeights, Handler<kBackwardWeights>, Binding());

// channel_sums.cc
extern "C" XLA_FFI_Error* GanjaxChannelSums(XLA_FFI_CallFrame* call_frame);

// The Python module: one PyCapsule per handler, for jax.ffi.register_ffi_target.
static PyObject* Capsule(XLA_FFI_Handler* handler) {
  return PyCapsule_New(reinterpret_cast<void*>(handler), nullptr, nullptr);
}

static PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_onednn_conv",
                                 "oneDNN convolutions as XLA FFI handlers.", -1, nullptr};

PyMODINIT_FUNC PyInit__onednn_conv(void) {
  PyObject* m = PyModule_Create(&module_def);
  if (m == nullptr) return nullptr;
  const std::pair<const char*, XLA_FFI_Handler*> handlers[] = {
      {"forward", OnednnConvForward},
      {"backward_data", OnednnConvBackwardData},
      {"backward_weights", OnednnConvBackwardWeights},
      {"channel_sums", GanjaxChannelSums}};
  for (const auto& [name, handler] : handlers) {
    if (PyModule_AddObject(m, name, Capsule(handler)) < 0) {
      Py_DECREF(m);
      return nullptr;
    }
  }
  PyModule_AddIntConstant(m, "onednn_version_major", dnnl_version()->major);
  PyModule_AddIntConstant(m, "onednn_version_minor", dnnl_version()->minor);
  return m;
}
