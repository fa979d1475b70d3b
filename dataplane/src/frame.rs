//! Owned frames: a packet buffer that exactly one party holds.
//!
//! A [`Frame`] is a chunk of a link's packet memory (a UMEM chunk for AF_XDP, a slice of a
//! heap arena otherwise) and the packet's place in it. It is neither `Copy` nor `Clone`, and
//! it carries its slice, so holding one is the proof that nobody else (another frame, the
//! kernel) may touch those bytes. Every frame is consumed exactly once: queued for
//! transmission (the link takes it), handed to the kernel path, or released to its [`Pool`].
//! The types enforce this: a frame released twice does not compile (use of a moved value).
//!
//! [`Pool`] keeps the free frames and a bitmap of which chunks it holds, so that a chunk that
//! comes back while already free (only possible through a link's own unsafe code, e.g. a
//! kernel ring handing an address back twice) is refused and counted, never put on the free
//! list twice.

/// A packet buffer one party holds: the whole chunk and the packet's range in it.
#[derive(Debug)]
pub struct Frame<'a> {
    chunk: &'a mut [u8],
    index: u32,
    off: u32,
    len: u32,
}

impl<'a> Frame<'a> {
    /// A frame over `chunk`, number `index` of its pool, holding no packet yet. Links make
    /// frames only from chunks nobody else holds (the borrow of the arena, or the UMEM's
    /// ownership bitmap, proves it).
    pub(crate) fn new(chunk: &'a mut [u8], index: u32) -> Self {
        Self {
            chunk,
            index,
            off: 0,
            len: 0,
        }
    }

    /// The chunk's number in its pool (AF_XDP: its UMEM address divided by the frame size).
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The whole chunk, headroom included.
    pub fn chunk(&self) -> &[u8] {
        self.chunk
    }

    pub fn chunk_mut(&mut self) -> &mut [u8] {
        self.chunk
    }

    /// Where the packet starts in the chunk.
    pub fn offset(&self) -> usize {
        self.off as usize
    }

    /// The packet's length.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The packet's bytes.
    pub fn packet(&self) -> &[u8] {
        let (off, len) = (self.offset(), self.len());
        self.chunk.get(off..off + len).unwrap_or(&[])
    }

    /// Sets where the packet lies in the chunk. False (and nothing changed) if the range does
    /// not fit in the chunk.
    pub fn set_packet(&mut self, off: usize, len: usize) -> bool {
        let fits = off
            .checked_add(len)
            .is_some_and(|end| end <= self.chunk.len());
        match (u32::try_from(off), u32::try_from(len)) {
            (Ok(o), Ok(l)) if fits => {
                self.off = o;
                self.len = l;
                true
            }
            _ => false,
        }
    }

    /// Gives the chunk back (for a link that hands it to the kernel and makes a new frame
    /// when the kernel returns it).
    pub(crate) fn into_parts(self) -> (u32, u32, u32) {
        (self.index, self.off, self.len)
    }
}

/// The free frames of one link, and which chunks they are.
#[derive(Debug)]
pub struct Pool<'a> {
    free: Vec<Frame<'a>>,
    /// Bit `i`: chunk `i` is in `free`.
    held: Vec<u64>,
    chunks: usize,
    /// Frames refused because their chunk was already free (a duplicate).
    duplicates: u64,
}

impl<'a> Pool<'a> {
    /// A pool holding `frames` (chunk numbers below `chunks`, no two the same).
    pub(crate) fn new(chunks: usize, frames: impl IntoIterator<Item = Frame<'a>>) -> Self {
        let mut pool = Self {
            free: Vec::with_capacity(chunks),
            held: vec![0; chunks.div_ceil(64)],
            chunks,
            duplicates: 0,
        };
        for f in frames {
            pool.release(f);
        }
        pool
    }

    /// A pool over an arena of memory the caller owns, cut into `frame_size` chunks (a test's
    /// or the socket link's buffers: no unsafe, the borrow proves the chunks are disjoint).
    pub fn from_arena(arena: &'a mut [u8], frame_size: usize) -> Self {
        let chunks = arena.len() / frame_size.max(1);
        Self::new(
            chunks,
            arena
                .chunks_exact_mut(frame_size.max(1))
                .enumerate()
                .map(|(i, c)| Frame::new(c, i as u32)),
        )
    }

    /// Chunks in the pool's memory, free or not.
    pub fn capacity(&self) -> usize {
        self.chunks
    }

    pub fn free_count(&self) -> usize {
        self.free.len()
    }

    /// Frames refused because their chunk was already free.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Whether chunk `index` is free (in the pool).
    pub fn holds(&self, index: u32) -> bool {
        let i = index as usize;
        self.held
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// A free frame, its packet empty.
    pub fn alloc(&mut self) -> Option<Frame<'a>> {
        let mut f = self.free.pop()?;
        let i = f.index as usize;
        self.held[i / 64] &= !(1 << (i % 64));
        f.off = 0;
        f.len = 0;
        Some(f)
    }

    /// Takes a frame back. A chunk already in the pool, or outside it, is refused and counted
    /// (its memory is someone else's mistake; putting it on the free list twice would hand
    /// one chunk to two packets).
    pub fn release(&mut self, f: Frame<'a>) {
        let i = f.index as usize;
        if i >= self.chunks || self.holds(f.index) {
            debug_assert!(false, "chunk {i} released twice or outside the pool");
            self.duplicates += 1;
            return;
        }
        self.held[i / 64] |= 1 << (i % 64);
        self.free.push(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_and_release_keep_count() {
        let mut arena = vec![0u8; 8 * 256];
        let mut pool = Pool::from_arena(&mut arena, 256);
        assert_eq!((pool.capacity(), pool.free_count()), (8, 8));
        let mut a = pool.alloc().unwrap();
        assert!(!pool.holds(a.index()));
        assert!(a.set_packet(10, 100));
        assert_eq!(a.packet().len(), 100);
        assert!(!a.set_packet(200, 100), "past the chunk");
        assert_eq!((a.offset(), a.len()), (10, 100));
        a.chunk_mut()[10] = 7;
        pool.release(a);
        assert_eq!(pool.free_count(), 8);
        let b = pool.alloc().unwrap();
        assert_eq!((b.offset(), b.len()), (0, 0), "a reused frame starts empty");
        pool.release(b);
    }

    /// The safety net below the types: a forged duplicate of a free chunk (what a kernel ring
    /// returning an address twice would make) is refused, not put on the free list again.
    #[test]
    #[cfg(not(debug_assertions))]
    fn a_duplicate_chunk_is_refused() {
        let mut arena = vec![0u8; 4 * 64];
        let mut other = vec![0u8; 64];
        let mut pool = Pool::from_arena(&mut arena, 64);
        let forged = Frame::new(&mut other, 2);
        pool.release(forged);
        assert_eq!(pool.duplicates(), 1);
        assert_eq!(pool.free_count(), 4);
    }

    /// In debug builds (the tests' build) a double release stops the test at once.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "released twice")]
    fn a_duplicate_chunk_panics_in_debug_builds() {
        let mut arena = vec![0u8; 4 * 64];
        let mut other = vec![0u8; 64];
        let mut pool = Pool::from_arena(&mut arena, 64);
        pool.release(Frame::new(&mut other, 2));
    }
}
