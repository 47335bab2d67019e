// Bias + leaky-ReLU family + gain + clamp on CUDA, the kernel behind ../bias_act.py.
// mode 0 (forward):  y = clamp(lrelu(x + b, alpha) * gain, -clamp, clamp)       (clamp < 0: no clamping)
// mode 1 (gradient): g = x * gain * (ref > 0 ? 1 : alpha) * (|ref| < clamp)     with ref = the saved output y
// linear is alpha = 1 and relu is alpha = 0. The bias is broadcast along dimension `dim`.
#include <torch/extension.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>

namespace {

template <typename scalar_t>
__global__ void bias_act_kernel(scalar_t* __restrict__ out, const scalar_t* __restrict__ x,
                                const scalar_t* __restrict__ b, const scalar_t* __restrict__ ref, int64_t total,
                                int64_t inner, int64_t channels, int mode, float alpha, float gain, float clamp) {
  using acc_t = at::opmath_type<scalar_t>;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)blockDim.x * gridDim.x) {
    acc_t v = static_cast<acc_t>(x[i]);
    if (mode == 0) {
      if (b != nullptr) v += static_cast<acc_t>(b[(i / inner) % channels]);
      v = v > acc_t(0) ? v : v * static_cast<acc_t>(alpha);
      v *= static_cast<acc_t>(gain);
      if (clamp >= 0.f) v = v > acc_t(clamp) ? acc_t(clamp) : (v < acc_t(-clamp) ? acc_t(-clamp) : v);
    } else {
      const acc_t y = static_cast<acc_t>(ref[i]);
      acc_t slope = (y > acc_t(0) ? acc_t(1) : static_cast<acc_t>(alpha)) * static_cast<acc_t>(gain);
      if (clamp >= 0.f && (y >= acc_t(clamp) || y <= acc_t(-clamp))) slope = 0;
      v *= slope;
    }
    out[i] = static_cast<scalar_t>(v);
  }
}

}  // namespace

torch::Tensor bias_act(const torch::Tensor& x, const torch::Tensor& b, const torch::Tensor& ref, int64_t mode,
                       int64_t dim, double alpha, double gain, double clamp) {
  TORCH_CHECK(x.is_cuda(), "bias_act: x must be a CUDA tensor");
  TORCH_CHECK(mode == 0 || mode == 1, "bias_act: mode must be 0 (forward) or 1 (gradient)");
  TORCH_CHECK(dim >= 0 && dim < x.dim(), "bias_act: dim out of range");
  const c10::cuda::CUDAGuard guard(x.device());
  auto xc = x.contiguous();
  const bool has_bias = b.numel() > 0;
  if (has_bias) {
    TORCH_CHECK(b.dim() == 1 && b.size(0) == xc.size(dim), "bias_act: bias must match x.size(dim)");
    TORCH_CHECK(b.scalar_type() == xc.scalar_type() && b.device() == xc.device(), "bias_act: bias dtype/device");
  }
  if (mode == 1) {
    TORCH_CHECK(ref.sizes() == xc.sizes() && ref.scalar_type() == xc.scalar_type(), "bias_act: ref must match x");
  }
  auto bc = has_bias ? b.contiguous() : b;
  auto rc = mode == 1 ? ref.contiguous() : ref;
  int64_t inner = 1;
  for (int64_t d = dim + 1; d < xc.dim(); ++d) inner *= xc.size(d);
  auto out = torch::empty_like(xc);
  const int64_t total = xc.numel();
  if (total == 0) return out;
  const int threads = 256;
  const int64_t blocks = std::min<int64_t>((total + threads - 1) / threads, 65535LL * 32);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, xc.scalar_type(), "bias_act_cuda",
                                  [&] {
    bias_act_kernel<scalar_t><<<blocks, threads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        out.data_ptr<scalar_t>(), xc.data_ptr<scalar_t>(), has_bias ? bc.data_ptr<scalar_t>() : nullptr,
        mode == 1 ? rc.data_ptr<scalar_t>() : nullptr, total, inner, has_bias ? xc.size(dim) : 1,
        static_cast<int>(mode), static_cast<float>(alpha), static_cast<float>(gain), static_cast<float>(clamp));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("bias_act", &bias_act, "bias + leaky-ReLU family + gain + clamp (CUDA)");
}
