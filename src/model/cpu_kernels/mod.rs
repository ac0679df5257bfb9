//! Convolutions and max pooling on the CPU backend (Burn flex), computed by modelslim rather
//! than by flex.
//!
//! Why: the CPU backend is what every visitor without WebGPU gets, and in the page's
//! single-threaded module it runs on one thread, so every pass over memory counts. Profiled with perf on one thread, flex
//! spent a third of EfficientNet-Lite0's time in depthwise convolutions at ~3 GMAC/s (see
//! `depthwise`), and in ResNet18 a third of the time went around the matrix products rather
//! than into them (see `im2col`); in the browser's profile its max pooling cost more than the
//! pooled layer's patches (see `max_pool`). The convolutions compute the same function as
//! flex's `conv2d` to float rounding (the unit tests compare), read the asymmetric TF-"same"
//! padding directly (no padded copy of the input), add the bias — and a residual addition's
//! other operand — inside the product, and apply a following ReLU/ReLU6 (`clamp`) to each tile
//! of output while it is in cache (`Network::build_for_inference` folds those in).
//!
//! Only plain f32 tensors on flex take these paths: tensors that track gradients (training)
//! and tensors on wgpu go to Burn's `conv2d` and `max_pool2d` as before. Grouped convolutions
//! other than depthwise (not in either network) do too.

mod depthwise;
mod im2col;
mod max_pool;

use burn::backend::flex::FlexTensor;
use burn::backend::{DispatchDevice, Flex};
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{DType, Tensor, TensorData};

/// The geometry of one 2-D convolution: input, kernel, stride and padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    /// Input `[batch, channels, height, width]`.
    pub input: [usize; 4],
    /// `[kernel height, kernel width]`.
    pub kernel: [usize; 2],
    /// `[vertical, horizontal]` stride.
    pub stride: [usize; 2],
    /// Zero padding `[top, left, bottom, right]`.
    pub pads: [usize; 4],
}

impl ConvShape {
    /// Output `[height, width]`; `None` when the kernel is larger than the padded input or a
    /// stride or kernel side is zero.
    pub fn output(&self) -> Option<[usize; 2]> {
        let [_, _, h, w] = self.input;
        let [kh, kw] = self.kernel;
        let [sh, sw] = self.stride;
        let [top, left, bottom, right] = self.pads;
        let (hp, wp) = (h + top + bottom, w + left + right);
        if sh == 0 || sw == 0 || kh == 0 || kw == 0 || hp < kh || wp < kw {
            return None;
        }
        Some([(hp - kh) / sh + 1, (wp - kw) / sw + 1])
    }

    /// [`ConvShape::output`] for `input`, which must hold the whole input (panics otherwise:
    /// callers check the tensors' shapes).
    fn output_for(&self, input: &[f32]) -> Option<[usize; 2]> {
        assert_eq!(
            input.len(),
            self.input.iter().product::<usize>(),
            "input length"
        );
        self.output()
    }

    /// The output columns `[first, end)` whose input column `ow·sw + kx − left` lies inside
    /// the input, for kernel column `kx` (rows likewise with `axis` 0).
    fn inside(&self, axis: usize, k: usize, out: usize) -> (usize, usize) {
        let size = self.input[2 + axis];
        let (stride, before) = (self.stride[axis], self.pads[axis]);
        let first = before.saturating_sub(k).div_ceil(stride);
        let end = (size + before).saturating_sub(k).div_ceil(stride).min(out);
        (first.min(end), end)
    }
}

/// `conv2d(x, weight, bias)` with `pads` (`[top, left, bottom, right]`) and `stride`, computed
/// here when it applies: `x`, `weight` and `bias` are plain f32 tensors on flex, and the
/// convolution is dense (one group) or depthwise (one filter per channel); plus `skip` (a
/// residual addition, dense only, same shape as the output) and clamped to `clamp` (`[low,
/// high]`) when given. `None` otherwise, for Burn's `conv2d`.
pub fn conv2d_on_cpu(
    x: &Tensor<4>,
    weight: &Tensor<4>,
    bias: Option<&Tensor<1>>,
    stride: [usize; 2],
    pads: [usize; 4],
    skip: Option<&Tensor<4>>,
    clamp: Option<[f32; 2]>,
) -> Option<Tensor<4>> {
    let [n, channels, _, _] = x.dims();
    let [filters, per_group, kh, kw] = weight.dims();
    let depthwise = per_group == 1 && filters == channels && channels > 1;
    if channels == 0 || !(depthwise || per_group == channels) {
        return None;
    }
    let (xs, ws) = (plain_f32(x)?, plain_f32(weight)?);
    let bs = match bias {
        Some(b) => Some(plain_f32(b)?),
        None => None,
    };
    let shape = ConvShape {
        input: x.dims(),
        kernel: [kh, kw],
        stride,
        pads,
    };
    let [oh, ow] = shape.output()?;
    let ss = match skip {
        Some(s) if !depthwise && s.dims() == [n, filters, oh, ow] => Some(plain_f32(s)?),
        Some(_) => return None,
        None => None,
    };
    let (input, weight, bias) = (values(&xs), values(&ws), bs.as_ref().map(values));
    let out = if depthwise {
        depthwise::depthwise_conv2d(input, weight, bias, &shape, clamp)
    } else {
        let skip = ss.as_ref().map(values);
        im2col::conv2d(input, weight, filters, bias, skip, &shape, clamp)
    };
    let out = FlexTensor::from_data(TensorData::new(out, [n, filters, oh, ow]));
    Some(Tensor::from_primitive::<Flex>(out))
}

/// `max_pool2d(x, options)`, computed here when `x` is a plain f32 tensor on flex and the
/// pooling has no dilation, floor rounding and padding smaller than its window; `None`
/// otherwise, for Burn's `max_pool2d`.
pub fn max_pool2d_on_cpu(x: &Tensor<4>, options: &MaxPoolOptions<2>) -> Option<Tensor<4>> {
    let [(top, bottom), (left, right)] = options.padding;
    let [kh, kw] = options.kernel_size;
    // A window wholly in the padding would have no maximum.
    if options.dilation != [1, 1]
        || options.ceil_mode
        || top.max(bottom) >= kh
        || left.max(right) >= kw
    {
        return None;
    }
    let [n, c, _, _] = x.dims();
    let shape = ConvShape {
        input: x.dims(),
        kernel: options.kernel_size,
        stride: options.stride,
        pads: [top, left, bottom, right],
    };
    let [oh, ow] = shape.output()?;
    let xs = plain_f32(x)?;
    let out = max_pool::max_pool2d(values(&xs), &shape);
    let out = FlexTensor::from_data(TensorData::new(out, [n, c, oh, ow]));
    Some(Tensor::from_primitive::<Flex>(out))
}

/// The flex primitive behind `t` when it is a plain f32 tensor on flex, made contiguous.
fn plain_f32<const D: usize>(t: &Tensor<D>) -> Option<FlexTensor> {
    if !matches!(t.device().as_dispatch(), DispatchDevice::Flex(_)) || t.dtype() != DType::F32 {
        return None;
    }
    // A clone is a reference to the same storage; a tensor that tracks gradients does not
    // convert (it lives on `Autodiff<Flex>`).
    let p = t.clone().try_into_primitive::<Flex>().ok()?;
    Some(if p.is_contiguous() && p.layout().start_offset() == 0 {
        p
    } else {
        p.to_contiguous()
    })
}

/// The values of a contiguous flex tensor (at offset 0), in order.
fn values(t: &FlexTensor) -> &[f32] {
    &t.storage::<f32>()[..t.layout().num_elements()]
}

/// `v ← min(max(v, low), high)` for each value; NaN stays NaN, as in Burn's ReLU.
fn clamp_slice(values: &mut [f32], [low, high]: [f32; 2]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        use core::arch::wasm32::{
            f32x4_pmax, f32x4_pmin, f32x4_splat, v128, v128_load, v128_store,
        };
        // Explicit vectors: the module is built for size, where LLVM does not vectorise loops.
        // pmax/pmin (`a < b ? b : a`) are one instruction each where min/max are several (they
        // order −0 and +0); with the value first, a NaN stays NaN.
        let (lo, hi) = (f32x4_splat(low), f32x4_splat(high));
        let mut chunks = values.chunks_exact_mut(4);
        for c in &mut chunks {
            // SAFETY: `c` is 4 floats: one unaligned 16-byte load and store inside it.
            unsafe {
                let v = v128_load(c.as_ptr() as *const v128);
                v128_store(
                    c.as_mut_ptr() as *mut v128,
                    f32x4_pmin(f32x4_pmax(v, lo), hi),
                );
            }
        }
        clamp_scalar(chunks.into_remainder(), [low, high]);
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    clamp_scalar(values, [low, high]);
}

/// [`clamp_slice`] one value at a time (comparisons, so that LLVM vectorises it natively).
fn clamp_scalar(values: &mut [f32], [low, high]: [f32; 2]) {
    for v in values {
        *v = if *v < low {
            low
        } else if *v > high {
            high
        } else {
            *v
        };
    }
}

/// Runs `per_image` on each image's output chunk: on all cores when there are several images
/// and threads (`cfg(parallel)`; `true` tells it the image runs alone, so it may parallelise
/// inside), else in order.
fn for_each_image(
    out: &mut [f32],
    image_len: usize,
    per_image: impl Fn(usize, &mut [f32], bool) + Sync + Send,
) {
    let images = out.len() / image_len.max(1);
    #[cfg(parallel)]
    if images > 1 {
        use rayon::prelude::*;
        out.par_chunks_mut(image_len)
            .enumerate()
            .for_each(|(i, y)| per_image(i, y, false));
        return;
    }
    for (i, y) in out.chunks_mut(image_len).enumerate().take(images) {
        per_image(i, y, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use burn::tensor::Device;
    use burn::tensor::module::conv2d;
    use burn::tensor::ops::{ConvOptions, PadMode};

    fn random(rng: &mut Rng, shape: &[usize]) -> Vec<f32> {
        (0..shape.iter().product::<usize>())
            .map(|_| rng.normal() as f32)
            .collect()
    }

    /// modelslim's kernel against Burn's own convolution on flex (explicit padding, then none
    /// in the conv), on random unit-normal values: each output sums up to a few hundred
    /// products of size ~1, so float rounding stays under 1e-4 while any wrong tap, offset or
    /// padding moves outputs by ~1.
    fn check(
        shape: ConvShape,
        filters: usize,
        depthwise: bool,
        residual: bool,
        clamp: Option<[f32; 2]>,
    ) {
        let device = Device::flex();
        let mut rng = Rng::new(7);
        let [_, c, _, _] = shape.input;
        let [kh, kw] = shape.kernel;
        let per_group = if depthwise { 1 } else { c };
        let wshape = [filters, per_group, kh, kw];
        let x = Tensor::<4>::from_data(
            TensorData::new(random(&mut rng, &shape.input), shape.input),
            &device,
        );
        let w = Tensor::<4>::from_data(TensorData::new(random(&mut rng, &wshape), wshape), &device);
        let b = Tensor::<1>::from_data(
            TensorData::new(random(&mut rng, &[filters]), [filters]),
            &device,
        );
        let [top, left, bottom, right] = shape.pads;
        let padded = x
            .clone()
            .pad((left, right, top, bottom), PadMode::Constant(0.0));
        let groups = if depthwise { c } else { 1 };
        let options = ConvOptions::new(shape.stride, [0, 0], [1, 1], groups);
        let want = conv2d(padded, w.clone(), Some(b.clone()), options);
        let skip = residual.then(|| {
            let dims = want.dims();
            Tensor::<4>::from_data(TensorData::new(random(&mut rng, &dims), dims), &device)
        });
        let want = match &skip {
            Some(s) => want + s.clone(),
            None => want,
        };
        let want = match clamp {
            Some([low, high]) => want.clamp(low, high),
            None => want,
        };
        let got = conv2d_on_cpu(
            &x,
            &w,
            Some(&b),
            shape.stride,
            shape.pads,
            skip.as_ref(),
            clamp,
        )
        .unwrap_or_else(|| panic!("{shape:?}: plain flex tensors take modelslim's kernel"));
        assert_eq!(got.dims(), want.dims(), "{shape:?}");
        let want = want.into_data().try_to_vec::<f32>().expect("f32");
        let got = got.into_data().try_to_vec::<f32>().expect("f32");
        let worst = want
            .iter()
            .zip(&got)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "{shape:?}: max |Δ| {worst}");
    }

    fn shape(
        input: [usize; 4],
        kernel: [usize; 2],
        stride: [usize; 2],
        pads: [usize; 4],
    ) -> ConvShape {
        ConvShape {
            input,
            kernel,
            stride,
            pads,
        }
    }

    /// Every stride, kernel and padding EfficientNet-Lite0's depthwise layers use (TF-"same"
    /// pads are asymmetric), plane sizes whose outputs end in a partial block, a batch of two,
    /// a 1×1 plane and a non-square kernel.
    #[test]
    fn depthwise_equals_burns_convolution() {
        for s in [
            shape([2, 3, 9, 11], [3, 3], [1, 1], [1, 1, 1, 1]),
            shape([1, 4, 14, 14], [5, 5], [1, 1], [2, 2, 2, 2]),
            shape([1, 5, 15, 15], [3, 3], [2, 2], [0, 0, 1, 1]),
            shape([1, 2, 16, 13], [5, 5], [2, 2], [1, 1, 2, 2]),
            shape([2, 3, 7, 7], [5, 5], [1, 1], [2, 2, 2, 2]),
            shape([1, 2, 1, 1], [3, 3], [1, 1], [1, 1, 1, 1]),
            shape([1, 3, 6, 9], [3, 1], [1, 2], [1, 0, 1, 0]),
        ] {
            check(s, s.input[1], true, false, None);
            check(s, s.input[1], true, false, Some([0.0, 6.0]));
        }
    }

    /// ResNet18's stem (7×7, stride 2, pad 3) and 3×3 convolutions at strides 1 and 2,
    /// EfficientNet's stem (TF-"same" pads), 1×1 convolutions with and without stride (the
    /// downsample path), a batch of two, and an output larger than one tile of the product.
    #[test]
    fn dense_equals_burns_convolution() {
        for (s, filters) in [
            (shape([1, 3, 23, 21], [7, 7], [2, 2], [3, 3, 3, 3]), 8),
            (shape([2, 6, 9, 9], [3, 3], [1, 1], [1, 1, 1, 1]), 5),
            (shape([1, 6, 10, 11], [3, 3], [2, 2], [1, 1, 1, 1]), 7),
            (shape([1, 3, 16, 16], [3, 3], [2, 2], [0, 0, 1, 1]), 4),
            (shape([2, 16, 5, 7], [1, 1], [1, 1], [0, 0, 0, 0]), 9),
            (shape([1, 8, 9, 9], [1, 1], [2, 2], [0, 0, 0, 0]), 6),
            (shape([1, 40, 30, 30], [3, 3], [1, 1], [1, 1, 1, 1]), 3),
        ] {
            check(s, filters, false, false, None);
            check(s, filters, false, true, Some([0.0, f32::INFINITY]));
            check(s, filters, false, true, None);
        }
    }

    /// One image whose convolution is shared out over threads — by tiles of a large plane, and
    /// by blocks of rows where the plane is one tile (256 filters on 14×14, as in ResNet18's
    /// third stage) — gives the same bits on one, two and three threads.
    #[test]
    fn a_shared_out_convolution_gives_the_same_bits_on_any_thread_count() {
        let mut rng = Rng::new(11);
        for (s, filters) in [
            (shape([1, 16, 48, 48], [3, 3], [1, 1], [1, 1, 1, 1]), 192),
            (shape([1, 256, 14, 14], [3, 3], [1, 1], [1, 1, 1, 1]), 256),
        ] {
            let x = random(&mut rng, &s.input);
            let w = random(&mut rng, &[filters, s.input[1], 3, 3]);
            let run = |threads: usize| {
                crate::parallel::on_pool(threads, || {
                    im2col::conv2d(&x, &w, filters, None, None, &s, Some([0.0, 6.0]))
                })
            };
            let one = run(1);
            assert_eq!(one.len(), filters * s.input[2] * s.input[3]);
            for threads in [2, 3] {
                let many = run(threads);
                let differ = one
                    .iter()
                    .zip(&many)
                    .filter(|(a, b)| a.to_bits() != b.to_bits());
                assert_eq!(differ.count(), 0, "{threads} threads, {:?}", s.input);
            }
        }
    }

    /// Convolutions started from inside the thread pool, several at once (a forward pass runs
    /// on the pool; two passes may share it): a thread waiting for its product's row blocks
    /// runs other convolutions' tiles meanwhile, which must neither fail nor change a value.
    #[test]
    fn convolutions_nested_in_the_pool_run_side_by_side() {
        let mut rng = Rng::new(5);
        let shapes = [
            (shape([1, 256, 14, 14], [3, 3], [1, 1], [1, 1, 1, 1]), 256),
            (shape([1, 16, 48, 48], [3, 3], [1, 1], [1, 1, 1, 1]), 64),
        ];
        let inputs: Vec<_> = shapes
            .iter()
            .map(|(s, filters)| {
                let x = random(&mut rng, &s.input);
                let w = random(&mut rng, &[*filters, s.input[1], 3, 3]);
                (x, w)
            })
            .collect();
        let conv = |i: usize| {
            let ((s, filters), (x, w)) = (&shapes[i], &inputs[i]);
            im2col::conv2d(x, w, *filters, None, None, s, None)
        };
        let alone: Vec<Vec<f32>> = (0..shapes.len()).map(conv).collect();
        // Two streams of convolutions, as two forward passes would be.
        let stream = |i: usize| (0..20).map(|_| conv(i)).collect::<Vec<_>>();
        let (a, b) = crate::parallel::on_pool(3, || rayon::join(|| stream(0), || stream(1)));
        for (i, ys) in [a, b].iter().enumerate() {
            for y in ys {
                assert!(
                    y.iter()
                        .zip(&alone[i])
                        .all(|(a, b)| a.to_bits() == b.to_bits())
                );
            }
        }
    }

    /// ResNet18's stem pooling (3×3, stride 2, pad 1) on even and odd sizes, a batch of two,
    /// and a window larger than the stride: the same values as Burn's max_pool2d.
    #[test]
    fn max_pool_equals_burns() {
        use burn::tensor::module::max_pool2d;
        let device = Device::flex();
        let mut rng = Rng::new(3);
        for (input, k, s, p) in [
            ([1, 3, 12, 12], 3, 2, 1),
            ([2, 2, 11, 9], 3, 2, 1),
            ([1, 2, 7, 8], 2, 2, 0),
            ([1, 1, 6, 6], 3, 1, 1),
        ] {
            let x =
                Tensor::<4>::from_data(TensorData::new(random(&mut rng, &input), input), &device);
            let options = MaxPoolOptions::new([k, k])
                .with_stride([s, s])
                .with_padding([p, p]);
            let want = max_pool2d(x.clone(), options.clone())
                .into_data()
                .try_to_vec::<f32>()
                .expect("f32");
            let got = max_pool2d_on_cpu(&x, &options)
                .expect("a plain flex tensor")
                .into_data()
                .try_to_vec::<f32>()
                .expect("f32");
            assert_eq!(got, want, "{input:?} k{k} s{s} p{p}");
        }
    }

    /// Tensors that track gradients keep Burn's convolution (these kernels have no backward).
    #[test]
    fn training_tensors_keep_burns_convolution() {
        let device = Device::flex().autodiff();
        let x = Tensor::<4>::ones([1, 2, 5, 5], &device);
        let w = Tensor::<4>::ones([2, 1, 3, 3], &device).require_grad();
        assert!(conv2d_on_cpu(&x, &w, None, [1, 1], [1, 1, 1, 1], None, None).is_none());
        let w = Tensor::<4>::ones([3, 2, 3, 3], &device).require_grad();
        assert!(conv2d_on_cpu(&x, &w, None, [1, 1], [1, 1, 1, 1], None, None).is_none());
    }
}
