//! A fully connected layer with its bias and activation fused: `act(x Wᵀ + b)`.

use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use crate::act::Act;
use crate::blas::{sgemm_new, transposed};
use crate::cpu::{slice, tensor, with_f32};
use crate::par;

const NAME: &str = "linear";
/// Batches at least this large copy the weight to its transpose before the forward product.
const TRANSPOSE_MIN_ROWS: usize = 32;
/// … and a weight with at least this many rows and columns.
const TRANSPOSE_MIN_SIDE: usize = 64;

/// The activation, and the output's shape when it is not `[n, out]` (a reshape fused in,
/// so that no reshape node adds a pass over the gradient in candle's backward).
struct LinearAct(Act, Option<Shape>);

impl CustomOp3 for LinearAct {
    fn name(&self) -> &'static str {
        NAME
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, i, o) = dims(xl.dims(), wl.dims(), bl.dims())?;
        let (x, w, b) = (slice(xs, xl, NAME)?, slice(ws, wl, NAME)?, slice(bs, bl, NAME)?);
        // The bias rows are the accumulator gemm adds x·Wᵀ to; each thread lays down its
        // own rows, multiplies onto them and applies the activation while they are in cache.
        // gemm packs a right-hand side stored transposed (`W` as `[out, in]`) a third
        // slower than a plain one, so a large `W` is copied to `Wᵀ` first: i·o moves
        // against n·i·o multiply-adds (see `examples/gemm_shapes.rs`). Narrow layers keep
        // the direct product: for them the copy saves next to nothing, and with every
        // layer copied the k = 2 point of the default sweep (256→2→256, one thread) came
        // out different in the last bits, while the wide layers give the same bits either way.
        let act = |rows: &mut [f32]| self.0.forward_serial(rows);
        let out = if n >= TRANSPOSE_MIN_ROWS && i.min(o) >= TRANSPOSE_MIN_SIDE {
            let wt = transposed(o, i, w, true);
            sgemm_new(n, o, i, x, false, &wt, false, Some(b), true, act)
        } else {
            sgemm_new(n, o, i, x, false, w, true, Some(b), true, act)
        };
        Ok((CpuStorage::F32(out), self.1.clone().unwrap_or_else(|| Shape::from((n, o)))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, i, o) = dims(x.dims(), w.dims(), b.dims())?;
        // g = grad ⊙ act'(res): the gradient at the pre-activation.
        let g = self.0.backward_at(res, grad, NAME)?;
        let db = b.track_op().then(|| {
            let mut db = vec![0f32; o];
            for row in g.chunks_exact(o.max(1)) {
                db.iter_mut().zip(row).for_each(|(d, &v)| *d += v);
            }
            db
        });
        // dW = gᵀ x : [o, n] · [n, i], and dx = g W : [n, o] · [o, i] only when something
        // upstream needs it (not for the data). With both wanted, each runs on its own
        // thread (one single-threaded gemm each, no split and no duplicated packing);
        // alone, a product is split over the pool.
        let (need_dw, need_dx) = (w.track_op(), x.track_op());
        let (dw, dx) = with_f32(x, NAME, |xv| {
            with_f32(w, NAME, |wv| {
                let grad_w = |par: bool| sgemm_new(o, i, n, &g, true, xv, false, None, par, |_| {});
                let grad_x = |par: bool| sgemm_new(n, i, o, &g, false, wv, false, None, par, |_| {});
                match (need_dw, need_dx) {
                    (true, true) => {
                        let mut both = par::map(2, |t| if t == 0 { grad_w(false) } else { grad_x(false) });
                        let dx = both.pop().unwrap_or_default();
                        (both.pop().unwrap_or_default(), dx)
                    }
                    (true, false) => (grad_w(true), Vec::new()),
                    (false, true) => (Vec::new(), grad_x(true)),
                    (false, false) => (Vec::new(), Vec::new()),
                }
            })
        })??;
        let dw = if need_dw { Some(tensor(dw, (o, i))?) } else { None };
        let dx = if need_dx { Some(tensor(dx, x.shape().clone())?) } else { None };
        Ok((dx, dw, db.map(|v| tensor(v, o)).transpose()?))
    }
}

/// `(n, in, out)` for an input `[n, …]` (its features flattened: `in` is the product of
/// the rest), weight `[out, in]`, bias `[out]`.
fn dims(x: &[usize], w: &[usize], b: &[usize]) -> Result<(usize, usize, usize)> {
    match (x, w, b) {
        ([n, rest @ ..], &[o, wi], &[bo]) if !rest.is_empty() && wi == rest.iter().product::<usize>() && bo == o => Ok((*n, wi, o)),
        _ => bail!("{NAME}: input {x:?}, weight {w:?} and bias {b:?} do not fit [n, in] (or [n, …] with in features), [out, in], [out]"),
    }
}

/// `act(x Wᵀ + b)` for `x: [n, in]`, `w: [out, in]`, `b: [out]` (the layout of candle's
/// and PyTorch's `Linear`), differentiable in all three. An input of more dimensions, `[n, …]`, is taken as its flattened features `[n, in]`
/// (its gradient comes back in its own shape).
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor, act: Act) -> Result<Tensor> {
    x.contiguous()?.apply_op3(&w.contiguous()?, &b.contiguous()?, LinearAct(act, None))
}

/// [`linear`] with its `[n, out]` output laid out as `shape` (`[n, …]`, `out` values a
/// sample), as `linear(…).reshape(shape)` but without the reshape's node in the graph.
pub fn linear_to(x: &Tensor, w: &Tensor, b: &Tensor, act: Act, shape: impl Into<Shape>) -> Result<Tensor> {
    let shape: Shape = shape.into();
    let (n, o) = (x.dims().first().copied().unwrap_or(0), w.dims().first().copied().unwrap_or(0));
    if shape.dims().first() != Some(&n) || shape.elem_count() != n * o {
        bail!("{NAME}: output shape {shape:?} does not hold [{n}, {o}] (it must be [{n}, …] with {o} values a sample)");
    }
    x.contiguous()?.apply_op3(&w.contiguous()?, &b.contiguous()?, LinearAct(act, Some(shape)))
}
