//! The plain loops over NHWC feature maps that the conv submissions run around their matrix products:
//! im2col (tap-major), the direct single-channel convolution, 2 × 2 max pooling with ReLU, and the depthwise
//! 3 × 3 convolution.

use zoo::DepthwiseConv2d;

use super::layer::FusedConv2d;
use crate::error::{invalid, shape_error, OlympicsError};

/// One row per output position, one column per (kernel row, kernel column, channel); zero where the
/// window hangs over the padding.
pub(super) fn im2col_tap_major(
    layer: &FusedConv2d,
    input: &[f32],
    (height, width): (usize, usize),
    (out_height, out_width): (usize, usize),
    columns: &mut Vec<f32>,
) {
    let channels = layer.in_channels;
    let patch = channels * layer.kernel_height * layer.kernel_width;
    // Zero everything once (one memset), then copy only the taps inside the image: the valid output columns
    // of each (output row, kernel row, kernel column) form one range, so the inner loop has no bounds test.
    columns.clear();
    columns.resize(out_height * out_width * patch, 0.0);
    let (stride, padding) = (layer.stride, layer.padding);
    for out_row in 0..out_height {
        for kernel_row in 0..layer.kernel_height {
            let Some(in_row) = (out_row * stride + kernel_row).checked_sub(padding) else {
                continue;
            };
            if in_row >= height {
                continue;
            }
            for kernel_col in 0..layer.kernel_width {
                // out_col is valid when 0 ≤ out_col · stride + kernel_col − padding < width.
                let first = padding.saturating_sub(kernel_col).div_ceil(stride);
                let end = (width + padding)
                    .saturating_sub(kernel_col)
                    .div_ceil(stride)
                    .min(out_width);
                let tap_offset = (kernel_row * layer.kernel_width + kernel_col) * channels;
                for out_col in first..end {
                    let in_col = out_col * stride + kernel_col - padding;
                    let source = (in_row * width + in_col) * channels;
                    let target = (out_row * out_width + out_col) * patch + tap_offset;
                    copy_run(
                        &mut columns[target..target + channels],
                        &input[source..source + channels],
                    );
                }
            }
        }
    }
}

/// A stride-1 convolution of a single-channel image, directly: each output position starts as the bias and
/// adds, per tap inside the image, the pixel times that tap's `out_channels` weights (tap-major rows).
pub(super) fn direct_single_channel(
    layer: &FusedConv2d,
    weight: &[f32],
    input: &[f32],
    (height, width): (usize, usize),
    (out_height, out_width): (usize, usize),
    out: &mut [f32],
) {
    let channels = layer.out_channels;
    for out_row in 0..out_height {
        for out_col in 0..out_width {
            let target = &mut out[(out_row * out_width + out_col) * channels..][..channels];
            copy_run(target, &layer.bias);
            for kernel_row in 0..layer.kernel_height {
                let Some(in_row) = (out_row + kernel_row).checked_sub(layer.padding) else {
                    continue;
                };
                if in_row >= height {
                    continue;
                }
                for kernel_col in 0..layer.kernel_width {
                    let Some(in_col) = (out_col + kernel_col).checked_sub(layer.padding) else {
                        continue;
                    };
                    if in_col >= width {
                        continue;
                    }
                    let pixel = input[in_row * width + in_col];
                    let tap = kernel_row * layer.kernel_width + kernel_col;
                    for (acc, &w) in target
                        .iter_mut()
                        .zip(&weight[tap * channels..(tap + 1) * channels])
                    {
                        *acc += pixel * w;
                    }
                }
            }
        }
    }
}

/// Copies a short run of channels. `copy_from_slice` on a run whose length is known only at run time becomes a
/// `memmove` call, which for runs of 1 to 32 values costs more than the copy: one value is assigned, longer
/// runs move in fixed eight-value blocks (inlined vector moves), the rest value by value.
#[inline(always)]
fn copy_run(target: &mut [f32], source: &[f32]) {
    if let ([target_value], [source_value]) = (&mut *target, source) {
        *target_value = *source_value;
        return;
    }
    let mut target_blocks = target.chunks_exact_mut(8);
    let mut source_blocks = source.chunks_exact(8);
    for (target_block, source_block) in (&mut target_blocks).zip(&mut source_blocks) {
        let block: [f32; 8] = source_block.try_into().expect("an eight-value block");
        target_block.copy_from_slice(&block);
    }
    for (target_value, source_value) in target_blocks
        .into_remainder()
        .iter_mut()
        .zip(source_blocks.remainder())
    {
        *target_value = *source_value;
    }
}

/// 2 × 2 max pooling of an `height × width × channels` map then ReLU (`max(relu(x)) = relu(max(x))`),
/// trailing odd rows and columns dropped as zoo does.
pub(super) fn max_pool2_relu(
    input: &[f32],
    (height, width, channels): (usize, usize, usize),
    out: &mut Vec<f32>,
) -> (usize, usize) {
    let (out_height, out_width) = (height / 2, width / 2);
    out.clear();
    out.resize(out_height * out_width * channels, 0.0);
    for out_row in 0..out_height {
        for out_col in 0..out_width {
            let target = &mut out[(out_row * out_width + out_col) * channels..][..channels];
            for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                let start = ((2 * out_row + dy) * width + 2 * out_col + dx) * channels;
                for (best, &value) in target.iter_mut().zip(&input[start..start + channels]) {
                    *best = best.max(value);
                }
            }
        }
    }
    (out_height, out_width)
}

/// A depthwise convolution (stride 1) with bias and ReLU, direct, channels innermost.
pub(super) fn depthwise_relu(
    layer: &DepthwiseConv2d,
    tap_major: &[f32],
    input: &[f32],
    (height, width, channels): (usize, usize, usize),
    out: &mut Vec<f32>,
) -> Result<(usize, usize), OlympicsError> {
    let taps = layer.kernel_height * layer.kernel_width;
    if tap_major.len() != taps * channels || layer.bias.len() != channels {
        return Err(shape_error(
            "depthwise weight",
            format!("{channels}×{taps}"),
            format!("{} weights, bias {}", tap_major.len(), layer.bias.len()),
        ));
    }
    if height + 2 * layer.padding < layer.kernel_height
        || width + 2 * layer.padding < layer.kernel_width
    {
        return Err(shape_error(
            "depthwise input",
            "kernel fits",
            format!("{height}×{width}"),
        ));
    }
    let out_height = height + 2 * layer.padding - layer.kernel_height + 1;
    let out_width = width + 2 * layer.padding - layer.kernel_width + 1;
    let Some(bias) = layer.bias.as_slice() else {
        return Err(invalid("depthwise bias not contiguous"));
    };
    out.resize(out_height * out_width * channels, 0.0);
    for out_row in 0..out_height {
        for out_col in 0..out_width {
            let target = &mut out[(out_row * out_width + out_col) * channels..][..channels];
            target.copy_from_slice(bias);
            for kernel_row in 0..layer.kernel_height {
                let in_row = (out_row + kernel_row) as isize - layer.padding as isize;
                if !(0 <= in_row && in_row < height as isize) {
                    continue;
                }
                for kernel_col in 0..layer.kernel_width {
                    let in_col = (out_col + kernel_col) as isize - layer.padding as isize;
                    if !(0 <= in_col && in_col < width as isize) {
                        continue;
                    }
                    let tap = kernel_row * layer.kernel_width + kernel_col;
                    let start = (in_row as usize * width + in_col as usize) * channels;
                    // Weights tap-major, so the channel loop reads three contiguous runs (vectorised).
                    let weights = &tap_major[tap * channels..(tap + 1) * channels];
                    for ((acc, &value), &weight) in target
                        .iter_mut()
                        .zip(&input[start..start + channels])
                        .zip(weights)
                    {
                        *acc += weight * value;
                    }
                }
            }
            target.iter_mut().for_each(|value| *value = value.max(0.0));
        }
    }
    Ok((out_height, out_width))
}
