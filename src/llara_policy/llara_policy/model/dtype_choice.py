"""Which dtype a policy computes in, and why: `dtype: auto` decides from the machine.

bfloat16 halves memory traffic, but only CPUs with native bf16 instructions (x86 AVX512_BF16 or
AMX, Arm's BF16 extension) run it fast; elsewhere torch emulates it and it is slower than
float32 (issue 8: the 30M model on an AVX2-only CPU took 4,550 ms per action in bf16, 2,014 ms
in fp32). The decision is made from flags, not timed, so it is deterministic and free.
"""
from dataclasses import dataclass
from pathlib import Path
import platform

import torch

from llara_policy.errors import ConfigError
from llara_policy.model.config import PolicyConfig

DTYPES = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16}
# Linux /proc/cpuinfo names of native bf16 arithmetic: AVX512_BF16 (Cooper Lake, Zen 4 and
# later) and AMX-BF16 (Sapphire Rapids) on x86 ('flags' line); FEAT_BF16 on Arm ('Features').
X86_BF16_FLAGS = ('avx512_bf16', 'amx_bf16')
ARM_BF16_FLAGS = ('bf16',)
_CPUINFO = Path('/proc/cpuinfo')


@dataclass(frozen=True)
class CpuFeatures:
    """What a CPU offers, as far as the dtype choice cares.

    Args:
        capability: torch's vector capability, `torch.backends.cpu.get_cpu_capability()`
            ('AVX2', 'AVX512', 'SVE256', 'DEFAULT', ...). It names no bf16 support on x86
            (an AMX machine says 'AVX512'), so the flags decide.
        flags: the CPU's feature flags ('flags' on x86, 'Features' on Arm); empty when unknown.
        machine: `platform.machine()`, e.g. 'x86_64', 'aarch64', 'arm64'.
    """

    capability: str
    flags: frozenset[str]
    machine: str


@dataclass(frozen=True)
class DtypeChoice:
    """The dtype weights and activations use, and a one-line reason a person can check."""

    dtype: torch.dtype
    reason: str

    @property
    def name(self) -> str:
        """The dtype's PolicyConfig name, e.g. 'bfloat16'."""
        return str(self.dtype).removeprefix('torch.')


def read_cpu_flags(cpuinfo: Path = _CPUINFO) -> frozenset[str]:
    """Return the first CPU's feature flags from a Linux cpuinfo file; empty when unreadable."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(':')
        if key.strip() in ('flags', 'Features'):
            return frozenset(value.split())
    return frozenset()


def detect_cpu_features() -> CpuFeatures:
    """Describe this machine's CPU (torch capability, cpuinfo flags, architecture)."""
    flags = read_cpu_flags()
    if not flags:  # no /proc/cpuinfo (macOS, containers hiding it): ask torch's x86 probes
        probes = {'avx512_bf16': '_is_avx512_bf16_supported', 'amx_bf16': '_is_amx_tile_supported'}
        flags = frozenset(flag for flag, probe in probes.items()
                          if getattr(torch.cpu, probe, lambda: False)())
    return CpuFeatures(torch.backends.cpu.get_cpu_capability(), flags, platform.machine())


def _bf16_flags(machine: str) -> tuple[str, ...]:
    arm = machine.lower() in ('aarch64', 'arm64') or machine.lower().startswith('arm')
    return ARM_BF16_FLAGS if arm else X86_BF16_FLAGS


def native_bf16_features(cpu: CpuFeatures) -> tuple[str, ...]:
    """Return the features that give `cpu` native bf16 arithmetic; empty when it has none."""
    wanted = _bf16_flags(cpu.machine)
    found = tuple(flag for flag in wanted if flag in cpu.flags)
    if 'BF16' in cpu.capability.upper() or 'AMX' in cpu.capability.upper():
        found += (cpu.capability,)
    return found


def choose_auto_dtype(device_type: str, cpu: CpuFeatures) -> DtypeChoice:
    """Apply the `dtype: auto` rule.

    float16 on CUDA, bfloat16 on a CPU with native bf16 arithmetic, float32 on any other CPU.
    """
    if device_type == 'cuda':
        return DtypeChoice(torch.float16, "float16: CUDA device (the dtype of LLaRA's eval)")
    native = native_bf16_features(cpu)
    if native:
        return DtypeChoice(torch.bfloat16, f'bfloat16: CPU has native bf16 ({", ".join(native)}; '
                                           f'torch capability {cpu.capability})')
    wanted = '/'.join(_bf16_flags(cpu.machine))
    if not cpu.flags:
        return DtypeChoice(torch.float32, f'float32: CPU flags unknown ({cpu.machine}, torch '
                                          f'capability {cpu.capability}), bf16 may be emulated')
    return DtypeChoice(torch.float32, f'float32: CPU capability {cpu.capability} has no native '
                                      f'bf16 (no {wanted} flag on {cpu.machine})')


def resolve_dtype(config: PolicyConfig, device: torch.device,
                  cpu: CpuFeatures | None = None) -> DtypeChoice:
    """Return the dtype of weights and activations and why; check CUDA-only and CPU-only choices.

    `cpu` defaults to this machine's features (detected only when `dtype` is 'auto' on CPU).
    """
    if config.quantization == 'dynamic_int8':
        if device.type != 'cpu':
            raise ConfigError("quantization 'dynamic_int8' runs on CPU only; on CUDA use "
                              "'int8' or 'nf4'")
        return DtypeChoice(torch.float32, "float32: quantization 'dynamic_int8' computes in "
                                          'float32')
    if config.dtype == 'auto':
        if device.type == 'cpu' and cpu is None:
            cpu = detect_cpu_features()
        return choose_auto_dtype(device.type, cpu)
    if config.dtype == 'float16' and device.type == 'cpu':
        raise ConfigError("dtype 'float16' is for CUDA; on CPU use 'bfloat16' or 'float32'")
    return DtypeChoice(DTYPES[config.dtype], f'{config.dtype}: set by PolicyConfig.dtype')
