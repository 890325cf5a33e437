//! The optimization under test: an LSD radix sort of `u32` keys (four passes of eight bits), which
//! claims to beat `slice::sort` on random keys while allocating only one scratch buffer.

/// Sort `keys` in place, ascending.
pub fn radix_sort(keys: &mut [u32]) {
    let mut scratch = vec![0u32; keys.len()];
    let (mut source, mut target) = (keys, scratch.as_mut_slice());
    for shift in [0u32, 8, 16, 24] {
        let mut counts = [0usize; 257];
        for &key in source.iter() {
            counts[((key >> shift) & 0xFF) as usize + 1] += 1;
        }
        for digit in 0..256 {
            counts[digit + 1] += counts[digit];
        }
        for &key in source.iter() {
            let digit = ((key >> shift) & 0xFF) as usize;
            target[counts[digit]] = key;
            counts[digit] += 1;
        }
        std::mem::swap(&mut source, &mut target);
    }
    // After four passes (an even number) the sorted keys are back in the caller's slice.
}

#[cfg(test)]
mod tests {
    #[test]
    fn sorts_like_the_standard_library() {
        let mut state = 0x9E37_79B9u32;
        for len in [0usize, 1, 2, 255, 256, 257, 10_000] {
            let mut keys: Vec<u32> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    state
                })
                .collect();
            let mut expected = keys.clone();
            expected.sort_unstable();
            super::radix_sort(&mut keys);
            assert_eq!(keys, expected);
        }
    }
}
