//! Reverse-mode differentiation of a graph: walks the nodes from the loss back to the
//! inputs, asks each op for its VJP (see `ops`) and sums the contributions of nodes used
//! more than once. The gradient nodes are appended to the same graph, so one program can
//! run the forward and backward passes together.

use crate::error::Result;
use crate::graph::{Graph, NodeId};

/// Gradient nodes of the scalar `loss` with respect to each node of `wrt`. A node that does
/// not influence the loss gets a zeros node.
pub fn gradients(g: &mut Graph, loss: NodeId, wrt: &[NodeId]) -> Result<Vec<NodeId>> {
    let ls = g.shape(loss);
    if ls.batched || ls.dims.iter().product::<usize>() != 1 {
        return crate::value_error!(
            "gradients: the loss must be a scalar, got shape {}",
            ls.display()
        );
    }
    // Which nodes depend on a node we differentiate with respect to.
    let mut needs = vec![false; loss + 1];
    for &w in wrt {
        if w <= loss {
            needs[w] = true;
        }
    }
    for n in 0..=loss {
        if !needs[n] {
            needs[n] = g.nodes[n].inputs.iter().any(|&i| needs[i]);
        }
    }
    let mut grad: Vec<Option<NodeId>> = vec![None; loss + 1];
    grad[loss] = Some(g.scalar(1.0));
    if g.shape(loss).rank() > 0 {
        let dims = g.shape(loss).dims.clone();
        let s = grad[loss].expect("just set");
        grad[loss] = Some(g.reshape(s, &dims)?);
    }
    for n in (0..=loss).rev() {
        let Some(dy) = grad[n] else { continue };
        if !needs[n] || g.nodes[n].inputs.is_empty() {
            continue;
        }
        let inputs = g.nodes[n].inputs.clone();
        let dxs = crate::ops::vjp(g, n, dy)?;
        for (&i, dx) in inputs.iter().zip(dxs) {
            let Some(dx) = dx else { continue };
            if !needs[i] {
                continue;
            }
            grad[i] = Some(match grad[i] {
                None => dx,
                Some(prev) => g.add(prev, dx)?,
            });
        }
    }
    Ok(wrt
        .iter()
        .map(|&w| match grad.get(w).copied().flatten() {
            Some(d) => d,
            None => {
                let s = g.shape(w).clone();
                g.zeros(s)
            }
        })
        .collect())
}

#[cfg(test)]
pub(crate) mod tests;
