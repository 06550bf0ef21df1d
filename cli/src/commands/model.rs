//! `eprof model info|tokenize`.

use std::path::Path;

use eprof_core::Registry;

use super::Out;

pub fn model_info(path: &Path, json: bool, out: Out) -> anyhow::Result<()> {
    let reg = Registry::discover()?;
    let src = eprof_models::load::detect(path)?;
    let adapter = reg.adapter_for(&src)?;
    let m = adapter.load(&src, &candle_core::Device::Cpu)?;
    let id = &m.identity;
    // Parameters per storage type (GGUF files; a Hugging Face folder has one dtype).
    let mix: Vec<(String, u64)> = match src.layout {
        eprof_core::model::ModelLayout::Gguf => {
            let (c, _) = eprof_models::load::read_gguf(path)?;
            eprof_models::load::weight_mix(&c)
        }
        _ => vec![(id.dtype.clone(), id.parameters)],
    };
    let total: u64 = mix.iter().map(|(_, n)| n).sum::<u64>().max(1);
    let kernels = eprof_models::execution(false).kernels;
    if json {
        let v = serde_json::json!({"identity": id, "adapter": adapter.name(), "layout": format!("{:?}", src.layout), "tokenizer": m.tokenizer.describe(), "sites": m.model.sites().len(), "weight_mix": mix, "cpu_kernels": kernels});
        out.write_all(serde_json::to_string_pretty(&v)?.as_bytes())?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "model         {}", id.name)?;
    writeln!(out, "adapter       {} ({:?})", adapter.name(), src.layout)?;
    writeln!(
        out,
        "layers        {}\nhidden        {}\nheads         {} ({} kv)\nvocabulary    {}\nparameters    {}\nweights       {}{}",
        id.layers,
        id.hidden_size,
        id.heads,
        id.kv_heads,
        id.vocab_size,
        id.parameters,
        mix.iter()
            .map(|(t, n)| match *n as f64 / total as f64 * 100.0 {
                p if p < 0.05 => format!("{t} <0.1%"),
                p => format!("{t} {p:.1}%"),
            })
            .collect::<Vec<_>>()
            .join(", "),
        if id.random_weights {
            " (random, built-in)"
        } else {
            ""
        }
    )?;
    writeln!(
        out,
        "cpu kernels   {kernels} for q4_1, q5_0, q5_1; candle's for the other types"
    )?;
    writeln!(out, "tokenizer     {}", m.tokenizer.describe())?;
    writeln!(
        out,
        "sites         {} (model, layers, components, attention operations)",
        m.model.sites().len()
    )?;
    Ok(())
}

pub fn model_tokenize(
    path: &Path,
    text: &str,
    special: bool,
    json: bool,
    out: Out,
) -> anyhow::Result<()> {
    let reg = Registry::discover()?;
    let src = eprof_models::load::detect(path)?;
    let m = reg
        .adapter_for(&src)?
        .load(&src, &candle_core::Device::Cpu)?;
    let ids = m.tokenizer.encode(text, special)?;
    if json {
        let v = serde_json::json!({"text": text, "ids": ids, "tokens": ids.iter().map(|&i| String::from_utf8_lossy(&m.tokenizer.token_bytes(i)).into_owned()).collect::<Vec<_>>()});
        out.write_all(serde_json::to_string(&v)?.as_bytes())?;
        writeln!(out)?;
        return Ok(());
    }
    for i in ids {
        writeln!(
            out,
            "{i:>7}  {:?}",
            String::from_utf8_lossy(&m.tokenizer.token_bytes(i))
        )?;
    }
    Ok(())
}
