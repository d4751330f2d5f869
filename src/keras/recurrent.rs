//! The recurrent layers' weights (`SimpleRNN`, `LSTM`, `GRU`): kernel, recurrent kernel and
//! bias held in the layer's cell scope (`lstm/lstm_cell/kernel`), gates concatenated.

use super::Walker;
use super::entry::{Entry, known};
use super::shapes::Dims;
use crate::error::Result;

/// Gates a cell stacks along its kernels' last axis (`units · gates` wide).
fn rnn_gates(class: &str) -> u64 {
    match class {
        "LSTM" => 4,
        "GRU" => 3,
        _ => 1,
    }
}

impl Walker {
    pub(super) fn rnn(
        &mut self,
        e: &Entry<'_>,
        prefix: &str,
        inp: &Dims,
        bpath: &str,
    ) -> Result<Option<Dims>> {
        let units = e.size("units")?;
        let fin = known(*inp.last().unwrap_or(&None), bpath, "last (feature) axis")?;
        let gates = rnn_gates(e.class);
        let gu = units.saturating_mul(gates);
        let cell = match e.class {
            "LSTM" => "lstm_cell",
            "GRU" => "gru_cell",
            _ => "simple_rnn_cell",
        };
        let k = e.init("kernel_initializer", "glorot_uniform")?;
        self.put(e, format!("{prefix}/{cell}/kernel"), vec![fin, gu], k);
        let r = e.init("recurrent_initializer", "orthogonal")?;
        self.put(
            e,
            format!("{prefix}/{cell}/recurrent_kernel"),
            vec![units, gu],
            r,
        );
        if e.flag("use_bias", true)? {
            let b = e.init("bias_initializer", "zeros")?;
            let (shape, forget) = match e.class {
                "GRU" if e.flag("reset_after", true)? => (vec![2, gu], None),
                "LSTM" if e.flag("unit_forget_bias", true)? => (vec![gu], Some(units)),
                _ => (vec![gu], None),
            };
            self.push(e, format!("{prefix}/{cell}/bias"), shape, b, None, forget);
        }
        let mut out = if e.flag("return_sequences", false)? && inp.len() >= 3 {
            inp[..inp.len() - 1].to_vec()
        } else {
            vec![inp[0]]
        };
        out.push(Some(units));
        Ok(Some(out))
    }
}
