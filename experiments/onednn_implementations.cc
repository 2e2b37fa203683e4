// Every oneDNN implementation of every pass of a set of convolutions, timed one at a time.
//
// Built and run by experiments/onednn_implementations.py (which gives the geometries). For
// each convolution (NHWC activations, weights in the layout the implementation asks for) and
// each pass (forward, backward data, backward weights), it walks oneDNN's implementations from
// its first choice on (dnnl_primitive_desc_next_impl) and prints the median time of 9
// executions on one thread. Reference implementations and those for older ISAs than the
// machine's best (names with "ref", "sse41", ":avx2") are listed but not timed.
//
//   onednn_implementations NAME N C H W F K S P [NAME N C H W F K S P ...]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"

using dnnl::memory;
using Tag = memory::format_tag;

namespace {

dnnl::engine engine(dnnl::engine::kind::cpu, 0);
dnnl::stream stream(engine);

memory Filled(const memory::desc& desc) {
  memory m(desc, engine);
  float* p = static_cast<float*>(m.get_data_handle());
  for (size_t i = 0; i < desc.get_size() / sizeof(float); ++i) p[i] = (i % 7) * 0.1f - 0.3f;
  return m;
}

double MedianMs(const dnnl::primitive& prim, const std::unordered_map<int, memory>& args) {
  prim.execute(stream, args);
  stream.wait();
  std::vector<double> times;
  for (int i = 0; i < 9; ++i) {
    auto start = std::chrono::steady_clock::now();
    prim.execute(stream, args);
    stream.wait();
    times.push_back(std::chrono::duration<double, std::milli>(
        std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

bool Timed(const std::string& impl) {
  for (const char* skip : {"ref", "sse41", ":avx2"}) {
    if (impl.find(skip) != std::string::npos) return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  omp_set_num_threads(1);
  if (argc < 10 || (argc - 1) % 9) {
    std::fprintf(stderr, "usage: %s NAME N C H W F K S P [...]\n", argv[0]);
    return 2;
  }
  const char* passes[] = {"forward", "backward_data", "backward_weights"};
  for (int a = 1; a < argc; a += 9) {
    const std::string name = argv[a];
    int64_t v[8];
    for (int i = 0; i < 8; ++i) v[i] = std::atoll(argv[a + 1 + i]);
    const int64_t n = v[0], c = v[1], h = v[2], w = v[3], f = v[4], k = v[5], s = v[6], p = v[7];
    const int64_t ho = (h + 2 * p - k) / s + 1, wo = (w + 2 * p - k) / s + 1;
    const memory::dims strides{s, s}, dilation{0, 0}, pad{p, p};
    const memory::dims pad_r{(ho - 1) * s + k - h - p, (wo - 1) * s + k - w - p};
    const memory::desc src({n, c, h, w}, memory::data_type::f32, Tag::nhwc);
    const memory::desc dst({n, f, ho, wo}, memory::data_type::f32, Tag::nhwc);
    const memory::desc wei({f, c, k, k}, memory::data_type::f32, Tag::any);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    const auto direct = dnnl::algorithm::convolution_direct;
    dnnl::convolution_forward::primitive_desc hint(
        engine, dnnl::prop_kind::forward_training, direct, src, wei, dst, strides, dilation,
        pad, pad_r, attr);
    for (int pass = 0; pass < 3; ++pass) {
      std::unique_ptr<dnnl::primitive_desc> pd;
      if (pass == 0) {  // a descriptor of its own: copies share (and next_impl moves) the hint
        pd.reset(new dnnl::convolution_forward::primitive_desc(
            engine, dnnl::prop_kind::forward_training, direct, src, wei, dst, strides, dilation,
            pad, pad_r, attr));
      }
      if (pass == 1) {
        pd.reset(new dnnl::convolution_backward_data::primitive_desc(
            engine, direct, src, wei, dst, strides, dilation, pad, pad_r, hint, attr));
      }
      if (pass == 2) {
        pd.reset(new dnnl::convolution_backward_weights::primitive_desc(
            engine, direct, src, wei, dst, strides, dilation, pad, pad_r, hint, attr));
      }
      int index = 0;
      do {
        const std::string impl = pd->impl_info_str();
        if (!Timed(impl)) {
          std::printf("%s\t%s\t%d\t-\t%s\n", name.c_str(), passes[pass], index++, impl.c_str());
          continue;
        }
        const memory::desc kernel =
            pd->query_md(pass == 2 ? dnnl::query::diff_weights_md : dnnl::query::weights_md);
        memory x = Filled(src), y = Filled(dst), wm = Filled(kernel);
        memory scratch = Filled(pd->scratchpad_desc());
        const int x_arg = pass == 1 ? DNNL_ARG_DIFF_SRC : DNNL_ARG_SRC;
        const int y_arg = pass == 0 ? DNNL_ARG_DST : DNNL_ARG_DIFF_DST;
        const int w_arg = pass == 2 ? DNNL_ARG_DIFF_WEIGHTS : DNNL_ARG_WEIGHTS;
        const dnnl::primitive prim(pd->get());
        const double ms = MedianMs(prim, {{x_arg, x}, {y_arg, y}, {w_arg, wm},
                                          {DNNL_ARG_SCRATCHPAD, scratch}});
        std::printf("%s\t%s\t%d\t%.3f\t%s\n", name.c_str(), passes[pass], index++, ms,
                    impl.c_str());
        std::fflush(stdout);
      } while (dnnl_primitive_desc_next_impl(pd->get()) == dnnl_success);
    }
  }
  return 0;
}
