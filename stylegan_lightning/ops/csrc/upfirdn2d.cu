// upfirdn2d on CUDA: zero-insertion upsampling, zero padding (negative = crop), true convolution with a 2-D
// kernel, decimation -- the same result as upfirdn2d_ref in ../upfirdn2d.py. One thread per output pixel;
// only the kernel taps that land on non-inserted input pixels are visited.
#include <torch/extension.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>

namespace {

// Smallest tap t >= 0 with (start + t) divisible by `up` and (start + t) >= 0.
__device__ __forceinline__ int64_t first_tap(int64_t start, int64_t up) {
  int64_t t = ((-start) % up + up) % up;
  if (start + t < 0) {
    t += ((-start - t + up - 1) / up) * up;
  }
  return t;
}

template <typename scalar_t>
__global__ void upfirdn2d_kernel(scalar_t* __restrict__ out, const scalar_t* __restrict__ x,
                                 const scalar_t* __restrict__ k, int64_t planes, int64_t in_h, int64_t in_w,
                                 int64_t out_h, int64_t out_w, int64_t kh, int64_t kw, int64_t up_x, int64_t up_y,
                                 int64_t down_x, int64_t down_y, int64_t pad_x0, int64_t pad_y0) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t total = planes * out_h * out_w;
  for (int64_t index = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; index < total;
       index += (int64_t)blockDim.x * gridDim.x) {
    const int64_t ox = index % out_w;
    const int64_t oy = (index / out_w) % out_h;
    const int64_t plane = index / (out_w * out_h);
    const scalar_t* src = x + plane * in_h * in_w;
    // Position of tap 0 in the upsampled (not yet padded) signal.
    const int64_t start_y = oy * down_y - pad_y0;
    const int64_t start_x = ox * down_x - pad_x0;
    const int64_t tap_y0 = first_tap(start_y, up_y);
    const int64_t tap_x0 = first_tap(start_x, up_x);
    acc_t acc = 0;
    for (int64_t ty = tap_y0; ty < kh; ty += up_y) {
      const int64_t iy = (start_y + ty) / up_y;
      if (iy >= in_h) break;
      for (int64_t tx = tap_x0; tx < kw; tx += up_x) {
        const int64_t ix = (start_x + tx) / up_x;
        if (ix >= in_w) break;
        // True convolution: tap (ty, tx) meets the flipped kernel entry.
        acc += static_cast<acc_t>(src[iy * in_w + ix]) * static_cast<acc_t>(k[(kh - 1 - ty) * kw + (kw - 1 - tx)]);
      }
    }
    out[index] = static_cast<scalar_t>(acc);
  }
}

}  // namespace

torch::Tensor upfirdn2d(const torch::Tensor& x, const torch::Tensor& kernel, int64_t up_x, int64_t up_y,
                        int64_t down_x, int64_t down_y, int64_t pad_x0, int64_t pad_x1, int64_t pad_y0,
                        int64_t pad_y1) {
  TORCH_CHECK(x.is_cuda() && kernel.is_cuda(), "upfirdn2d: x and kernel must be CUDA tensors");
  TORCH_CHECK(x.dim() == 4, "upfirdn2d: x must be NCHW");
  TORCH_CHECK(kernel.dim() == 2, "upfirdn2d: kernel must be 2-D");
  TORCH_CHECK(x.scalar_type() == kernel.scalar_type(), "upfirdn2d: x and kernel must have the same dtype");
  TORCH_CHECK(up_x >= 1 && up_y >= 1 && down_x >= 1 && down_y >= 1, "upfirdn2d: up/down must be >= 1");
  const c10::cuda::CUDAGuard guard(x.device());
  auto xc = x.contiguous();
  auto kc = kernel.contiguous();
  const int64_t batch = xc.size(0), channels = xc.size(1), in_h = xc.size(2), in_w = xc.size(3);
  const int64_t kh = kc.size(0), kw = kc.size(1);
  const int64_t out_h = (in_h * up_y + pad_y0 + pad_y1 - kh + down_y) / down_y;
  const int64_t out_w = (in_w * up_x + pad_x0 + pad_x1 - kw + down_x) / down_x;
  TORCH_CHECK(out_h > 0 && out_w > 0, "upfirdn2d: empty output");
  auto out = torch::empty({batch, channels, out_h, out_w}, xc.options());
  const int64_t total = out.numel();
  if (total == 0) return out;
  const int threads = 256;
  const int64_t blocks = std::min<int64_t>((total + threads - 1) / threads, 65535LL * 32);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, xc.scalar_type(),
                                  "upfirdn2d_cuda", [&] {
    upfirdn2d_kernel<scalar_t><<<blocks, threads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        out.data_ptr<scalar_t>(), xc.data_ptr<scalar_t>(), kc.data_ptr<scalar_t>(), batch * channels, in_h, in_w,
        out_h, out_w, kh, kw, up_x, up_y, down_x, down_y, pad_x0, pad_y0);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("upfirdn2d", &upfirdn2d, "upfirdn2d (CUDA)");
}
