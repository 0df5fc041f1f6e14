//! `op_table!`, which turns the op table at the end of `ops/mod.rs` into the four dispatch
//! functions; the table's rows and the module docs there say what an op registers.

/// Expands the op table into the four dispatch functions.
///
/// The table first names the parameters of the four functions, in order, and for `vjp`
/// also `op` and `x` (the node's op and its inputs): macro hygiene hides names that a macro
/// introduces from the expressions passed to it, so the rows can use only names that the
/// table itself spells. Then comes one row per variant (an or-pattern where variants share
/// every column):
///
/// ```text
/// Pattern => { infer: Result<Shape>, vjp: gradients, scratch: usize (optional), cpu: () }
/// ```
///
/// `vjp` runs inside `Ok(..)`, so it may use `?`. A row binds the fields that any of its
/// columns reads, hence `allow(unused_variables)` on the arms.
macro_rules! op_table {
    // A row's scratch floats: 0 unless it names a length.
    (@scratch) => { 0 };
    (@scratch $len:expr) => { $len };
    (
        names {
            infer_shape($op:ident, $shapes:ident);
            vjp($g:ident, $node:ident, $dy:ident; $vjp_op:ident, $x:ident);
            scratch_len($scratch_op:ident, $in_dims:ident, $scratch_out_dims:ident);
            forward($cpu_op:ident, $ins:ident, $out:ident, $out_dims:ident, $scratch:ident,
                    $ctx:ident);
        }
        $(
            $pat:pat => {
                infer: $infer:expr,
                vjp: $vjp:expr,
                $(scratch: $scratch_len:expr,)?
                cpu: $cpu:expr $(,)?
            }
        )*
    ) => {
        /// The output shape of `op` applied to inputs of these shapes, or a value error that
        /// says what is wrong with them.
        pub fn infer_shape($op: &Op, $shapes: &[&Shape]) -> Result<Shape> {
            match $op {
                $( #[allow(unused_variables)] $pat => $infer, )*
            }
        }

        /// Gradient nodes for each input of `node` given the gradient `dy` of its output;
        /// `None` where an input gets no gradient.
        pub fn vjp(
            $g: &mut Graph,
            $node: NodeId,
            $dy: NodeId,
        ) -> Result<SmallVec<[Option<NodeId>; 3]>> {
            // A copy of the node, so that rows may push onto the graph while reading it.
            let n = $g.nodes[$node].clone();
            let ($vjp_op, $x) = (&n.op, &n.inputs[..]);
            Ok(match $vjp_op {
                $( #[allow(unused_variables)] $pat => $vjp, )*
            })
        }

        /// Floats of scratch memory an op's kernel needs for these concrete shapes (0 for
        /// most ops). The program plans one scratch buffer, the largest any step needs, and
        /// hands it to every kernel, so that kernels with temporaries allocate nothing while
        /// running.
        pub fn scratch_len(
            $scratch_op: &Op,
            $in_dims: &[&[usize]],
            $scratch_out_dims: &[usize],
        ) -> usize {
            match $scratch_op {
                $( #[allow(unused_variables)] $pat => op_table!(@scratch $($scratch_len)?), )*
            }
        }

        /// Runs one op's CPU kernel into `out` (which has exactly the output's element
        /// count); `scratch` has at least [`scratch_len`] floats.
        pub fn forward(
            $cpu_op: &Op,
            $ins: &[In<'_>],
            $out: &mut [f32],
            $out_dims: &[usize],
            $scratch: &mut [f32],
            $ctx: &Ctx,
        ) {
            match $cpu_op {
                $( #[allow(unused_variables)] $pat => $cpu, )*
            }
        }
    };
}
