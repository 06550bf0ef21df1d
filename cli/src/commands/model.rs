//! `eprof model info|tokenize`.

use std::path::Path;

use eprof_core::Registry;

use super::traces::Out;

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
        eprof_models::mix_line(&mix, false),
        if id.random_weights {
            " (random weights: timings and energy are real, the text is noise)"
        } else {
            ""
        }
    )?;
    let own = eprof_models::own_kernel_types();
    writeln!(
        out,
        "cpu kernels   {kernels} for {}; candle's for the other types",
        own.join(", ")
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

/// `eprof model synth`: a GGUF of random weights with a real model's shapes.
pub fn model_synth(
    shape: &str,
    dtype: &str,
    seed: u64,
    file: &Path,
    json: bool,
    out: Out,
) -> anyhow::Result<()> {
    use eprof_models::synth;
    let shape = synth::shape(shape).map_err(|e| crate::exit::Exit(2, e.to_string()))?;
    let ty = synth::dtype(dtype).map_err(|e| crate::exit::Exit(2, e.to_string()))?;
    if file.is_dir() {
        return Err(crate::exit::Exit(
            2,
            format!(
                "{} is a folder: give the .gguf file to write",
                file.display()
            ),
        )
        .into());
    }
    let s = synth::synthesize(shape, ty, file, seed)?;
    if json {
        let v = serde_json::json!({"file": file, "shape": shape.name, "dtype": dtype, "parameters": s.parameters, "bytes": s.bytes, "fallbacks": s.fallbacks, "random_weights": true});
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{}: {} ({} parameters, {} layers, hidden {}), {dtype}, random weights, {:.1} MB",
        file.display(),
        shape.about,
        s.parameters,
        shape.layers,
        shape.hidden,
        s.bytes as f64 / 1e6
    )?;
    if !s.fallbacks.is_empty() {
        writeln!(
            out,
            "{} matrices whose rows are not whole {dtype} blocks are stored as {} (as llama.cpp does)",
            s.fallbacks.len(),
            s.fallbacks[0].1
        )?;
    }
    Ok(())
}

/// `eprof model check-device`: the same prompt and tokens through the model on the
/// CPU and on `device`; the largest logit difference per step and whether the greedy
/// choice agrees. Both follow the CPU's greedy tokens, so one early disagreement does
/// not make every later step differ.
pub fn model_check_device(
    path: &Path,
    device: eprof_record::DeviceSpec,
    tokens: usize,
    prompt: &str,
    json: bool,
    out: Out,
) -> anyhow::Result<()> {
    use candle_core::{Device, Tensor};
    use eprof_core::NullRecorder;
    let reg = Registry::discover()?;
    let src = eprof_models::load::detect(path)?;
    let adapter = reg.adapter_for(&src)?;
    let dev = eprof_record::candle_device(device).map_err(|e| match e.hint {
        Some(h) => anyhow::anyhow!("{}; {h}", e.message),
        None => anyhow::anyhow!(e.message),
    })?;
    let mut cpu = adapter.load(&src, &Device::Cpu)?;
    let mut gpu = adapter.load(&src, &dev)?;
    let mut ids = cpu.tokenizer.encode(prompt, true)?;
    let mut steps = Vec::new();
    let mut pos = 0;
    let mut input = ids.clone();
    for step in 0..=tokens {
        let x = |d: &Device| Tensor::new(input.as_slice(), d).and_then(|t| t.unsqueeze(0));
        let a = cpu
            .model
            .forward(&x(&Device::Cpu)?, pos, &mut NullRecorder)?;
        let b = gpu.model.forward(&x(&dev)?, pos, &mut NullRecorder)?;
        let a: Vec<f32> = a.to_vec1()?;
        let b: Vec<f32> = b.to_device(&Device::Cpu)?.to_vec1()?;
        let argmax = |v: &[f32]| {
            v.iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |m, (i, &x)| if x > m.1 { (i, x) } else { m },
                )
                .0 as u32
        };
        let max_diff = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        let range = a.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x))
            - a.iter().fold(f32::INFINITY, |m, &x| m.min(x));
        let (ia, ib) = (argmax(&a), argmax(&b));
        steps.push(serde_json::json!({"step": step, "max_abs_diff": max_diff, "cpu_logit_range": range, "cpu_token": ia, "device_token": ib}));
        pos += input.len();
        input = vec![ia];
        ids.push(ia);
    }
    let agree = steps
        .iter()
        .take_while(|s| s["cpu_token"] == s["device_token"])
        .count();
    let worst = steps
        .iter()
        .filter_map(|s| s["max_abs_diff"].as_f64())
        .fold(0f64, f64::max);
    if json {
        let v = serde_json::json!({"model": cpu.identity.name, "device": device.to_string(), "steps": steps, "greedy_agree_steps": agree, "max_abs_diff": worst});
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{} on {device} against the CPU",
        cpu.identity.describe()
    )?;
    for s in &steps {
        writeln!(
            out,
            "  step {:>3}: max |logit difference| {:.3e} (CPU logits span {:.2}); token {} / {}",
            s["step"],
            s["max_abs_diff"].as_f64().unwrap_or(f64::NAN),
            s["cpu_logit_range"].as_f64().unwrap_or(f64::NAN),
            s["cpu_token"],
            s["device_token"]
        )?;
    }
    writeln!(
        out,
        "greedy tokens agree for {agree} of {} steps; largest difference {worst:.3e}",
        steps.len()
    )?;
    Ok(())
}
