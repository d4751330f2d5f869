//! Recurrent (`rnn`, `lstm`, `gru`) and `multihead_attention` layer entries: fields, size
//! inference and canonical JSON. Which framework supports which option is checked by the plan.

use serde_json::{Map, Value, json};

use super::fields::{Obj, join};
use super::layers::{input_size, opt_init};
use crate::error::{Result, SpecError};
use crate::init::Init;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell {
    Rnn,
    Lstm,
    Gru,
}

impl Cell {
    pub fn type_name(self) -> &'static str {
        match self {
            Cell::Rnn => "rnn",
            Cell::Lstm => "lstm",
            Cell::Gru => "gru",
        }
    }
    /// Gates stacked in one PyTorch matrix.
    pub fn gates(self) -> u64 {
        match self {
            Cell::Rnn => 1,
            Cell::Lstm => 4,
            Cell::Gru => 3,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Recurrent {
    pub cell: Cell,
    pub input_size: u64,
    pub hidden_size: u64,
    pub num_layers: u64,
    pub bidirectional: bool,
    pub bias: bool,
    /// PyTorch LSTM `proj_size` (0: none).
    pub proj_size: u64,
    /// Keras LSTM `unit_forget_bias` (default true under Keras).
    pub unit_forget_bias: Option<bool>,
    /// Keras GRU `reset_after` (default true).
    pub reset_after: Option<bool>,
    pub kernel_init: Option<Init>,
    pub recurrent_init: Option<Init>,
    pub bias_init: Option<Init>,
}

impl Recurrent {
    pub fn output_features(&self) -> u64 {
        let h = if self.proj_size > 0 {
            self.proj_size
        } else {
            self.hidden_size
        };
        h * if self.bidirectional { 2 } else { 1 }
    }

    pub fn write(&self, m: &mut Map<String, Value>) {
        m.insert("input_size".into(), json!(self.input_size));
        m.insert("hidden_size".into(), json!(self.hidden_size));
        m.insert("num_layers".into(), json!(self.num_layers));
        m.insert("bidirectional".into(), json!(self.bidirectional));
        m.insert("bias".into(), json!(self.bias));
        if self.cell == Cell::Lstm {
            m.insert("proj_size".into(), json!(self.proj_size));
        }
        if let Some(u) = self.unit_forget_bias {
            m.insert("unit_forget_bias".into(), json!(u));
        }
        if let Some(r) = self.reset_after {
            m.insert("reset_after".into(), json!(r));
        }
        for (k, i) in [
            ("kernel_initializer", &self.kernel_init),
            ("recurrent_initializer", &self.recurrent_init),
            ("bias_initializer", &self.bias_init),
        ] {
            if let Some(i) = i {
                m.insert(k.into(), i.to_json());
            }
        }
    }
}

pub fn parse_recurrent(
    o: &Obj<'_>,
    cell: Cell,
    path: &str,
    prev: Option<&(u64, String)>,
) -> Result<Recurrent> {
    let given = o.size_any(&["input_size", "input_dim"])?;
    let input_size = input_size(given, prev, path, "input_size")?;
    let (hidden_size, _) = o.size_any(&["hidden_size", "units"])?.ok_or_else(|| {
        SpecError::missing_field(
            join(path, "hidden_size"),
            format!(
                "a {} layer needs `hidden_size` (or `units`)",
                cell.type_name()
            ),
        )
    })?;
    let num_layers = o.size_any(&["num_layers"])?.map(|x| x.0).unwrap_or(1);
    let proj_size = if cell == Cell::Lstm {
        match o.get_any(&["proj_size"])? {
            None => 0,
            Some((v, p)) => {
                let n = super::fields::integer(v, &p)?;
                if n < 0 || n as u64 >= hidden_size {
                    return Err(SpecError::invalid_value(
                        p,
                        format!("proj_size must be in [0, hidden_size = {hidden_size})"),
                    ));
                }
                n as u64
            }
        }
    } else {
        0
    };
    let opt_bool = |k: &'static str| -> Result<Option<bool>> {
        if o.has(k) {
            o.bool_any(&[k], false).map(Some)
        } else {
            Ok(None)
        }
    };
    let unit_forget_bias = if cell == Cell::Lstm {
        opt_bool("unit_forget_bias")?
    } else {
        None
    };
    let reset_after = if cell == Cell::Gru {
        opt_bool("reset_after")?
    } else {
        None
    };
    Ok(Recurrent {
        cell,
        input_size,
        hidden_size,
        num_layers,
        bidirectional: o.bool_any(&["bidirectional"], false)?,
        bias: o.bool_any(&["bias", "use_bias"], true)?,
        proj_size,
        unit_forget_bias,
        reset_after,
        kernel_init: opt_init(o, &["kernel_initializer"])?,
        recurrent_init: opt_init(o, &["recurrent_initializer"])?,
        bias_init: opt_init(o, &["bias_initializer"])?,
    })
}

#[derive(Clone, Debug, PartialEq)]
pub struct Attention {
    pub embed_dim: u64,
    pub num_heads: u64,
    pub kdim: u64,
    pub vdim: u64,
    pub bias: bool,
    pub add_bias_kv: bool,
    pub kernel_init: Option<Init>,
    pub bias_init: Option<Init>,
}

impl Attention {
    pub fn head_dim(&self) -> u64 {
        self.embed_dim / self.num_heads
    }

    pub fn write(&self, m: &mut Map<String, Value>) {
        m.insert("embed_dim".into(), json!(self.embed_dim));
        m.insert("num_heads".into(), json!(self.num_heads));
        m.insert("kdim".into(), json!(self.kdim));
        m.insert("vdim".into(), json!(self.vdim));
        m.insert("bias".into(), json!(self.bias));
        m.insert("add_bias_kv".into(), json!(self.add_bias_kv));
        if let Some(i) = &self.kernel_init {
            m.insert("kernel_initializer".into(), i.to_json());
        }
        if let Some(i) = &self.bias_init {
            m.insert("bias_initializer".into(), i.to_json());
        }
    }
}

pub fn parse_attention(o: &Obj<'_>, path: &str, prev: Option<&(u64, String)>) -> Result<Attention> {
    let given = o.size_any(&["embed_dim"])?;
    let embed_dim = input_size(given, prev, path, "embed_dim")?;
    let (num_heads, hp) = o.size_any(&["num_heads"])?.ok_or_else(|| {
        SpecError::missing_field(
            join(path, "num_heads"),
            "multihead_attention needs `num_heads`",
        )
    })?;
    if !embed_dim.is_multiple_of(num_heads) {
        return Err(SpecError::inconsistent_sizes(
            hp,
            format!("embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})"),
        ));
    }
    Ok(Attention {
        embed_dim,
        num_heads,
        kdim: o.size_any(&["kdim"])?.map(|x| x.0).unwrap_or(embed_dim),
        vdim: o.size_any(&["vdim"])?.map(|x| x.0).unwrap_or(embed_dim),
        bias: o.bool_any(&["bias", "use_bias"], true)?,
        add_bias_kv: o.bool_any(&["add_bias_kv"], false)?,
        kernel_init: opt_init(o, &["kernel_initializer"])?,
        bias_init: opt_init(o, &["bias_initializer"])?,
    })
}
