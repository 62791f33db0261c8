/**
 * The guest the accelerator probe boots: one x86 boot sector (512 bytes) that prints a marker
 * on the first serial port and halts. SeaBIOS loads it at 0000:7c00 in real mode. It proves
 * that the CPU ran guest code under the accelerator, with nothing from the image needed, so
 * `macvm doctor` can run it before any image is built.
 *
 * Hand-assembled; `objdump -D -b binary -mi8086 probe.img` shows the same listing:
 *
 *   00: fa          cli
 *   01: 31 c0       xor  ax, ax
 *   03: 8e d8       mov  ds, ax          ; DS = 0: the message's address is absolute
 *   05: fc          cld
 *   06: ba f8 03    mov  dx, 0x3f8       ; COM1 data port
 *   09: be 17 7c    mov  si, 0x7c17      ; 0x7c00 + offset of the message (0x17)
 *   0c: ac          lodsb                ; loop:
 *   0d: 84 c0       test al, al
 *   0f: 74 03       jz   0x14
 *   11: ee          out  dx, al
 *   12: eb f8       jmp  0x0c
 *   14: f4          hlt                  ; done:
 *   15: eb fd       jmp  0x14
 *   17: "MACVM-ACCEL-PROBE-OK\r\n\0"
 *   1fe: 55 aa      boot signature
 */
export const PROBE_MARKER = 'MACVM-ACCEL-PROBE-OK';

const CODE = [0xfa, 0x31, 0xc0, 0x8e, 0xd8, 0xfc, 0xba, 0xf8, 0x03, 0xbe, 0x17, 0x7c, 0xac, 0x84, 0xc0, 0x74, 0x03, 0xee, 0xeb, 0xf8, 0xf4, 0xeb, 0xfd];

export function x86ProbeBootSector(): Buffer {
  const sector = Buffer.alloc(512);
  Buffer.from(CODE).copy(sector, 0);
  Buffer.from(`${PROBE_MARKER}\r\n\0`, 'latin1').copy(sector, CODE.length);
  sector[510] = 0x55;
  sector[511] = 0xaa;
  return sector;
}
