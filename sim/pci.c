/*
 * What firmware and the Windows PCI bus driver do before a miniport starts: size and
 * assign the memory BARs (above the backend's MMIO window base), enable memory decoding
 * and bus mastering, find MSI-X, and - when Windows grants message interrupts - program
 * the MSI-X table to write markers into guest RAM the simulator watches, then enable
 * MSI-X. These accesses are the OS's, not the driver's: they are not counted as driver
 * MMIO. Identical for both backends.
 */
#include <stdio.h>
#include <string.h>

#include "sim.h"

static uint32_t cr(sim_dev *d, unsigned off, unsigned w) { return d->ops->cfg_read(d, off, w); }
static void cw(sim_dev *d, unsigned off, unsigned w, uint32_t v) { d->ops->cfg_write(d, off, w, v); }

int sim_pci_configure(sim_dev *dev, struct sim_pci *p, char *err, size_t errlen)
{
    memset(p, 0, sizeof(*p));
    uint32_t id = cr(dev, 0, 4);
    if ((id & 0xFFFF) == 0xFFFF) {
        snprintf(err, errlen, "no PCI function (vendor id reads 0xFFFF)");
        return -1;
    }
    /* memory decoding off while sizing */
    uint16_t cmd = (uint16_t)cr(dev, 4, 2);
    cw(dev, 4, 2, cmd & ~(PCI_ENABLE_MEMORY_SPACE | PCI_ENABLE_IO_SPACE | PCI_ENABLE_BUS_MASTER));

    uint64_t cursor = dev->mmio_window_base;
    for (unsigned i = 0; i < 6; i++) {
        unsigned off = 0x10 + 4 * i;
        uint32_t orig = cr(dev, off, 4);
        if (orig & PCI_ADDRESS_IO_SPACE) {
            cw(dev, off, 4, 0xFFFFFFFF);
            uint32_t m = cr(dev, off, 4);
            cw(dev, off, 4, orig);
            if (m & ~3u) sim_log("pci: BAR%u is an I/O BAR; not assigned (no port I/O in the simulator)", i);
            continue;
        }
        bool is64 = (orig & PCI_ADDRESS_MEMORY_TYPE_MASK) == PCI_TYPE_64BIT;
        cw(dev, off, 4, 0xFFFFFFFF);
        uint64_t mask = cr(dev, off, 4) & PCI_ADDRESS_MEMORY_ADDRESS_MASK;
        if (is64 && i < 5) {
            cw(dev, off + 4, 4, 0xFFFFFFFF);
            mask |= (uint64_t)cr(dev, off + 4, 4) << 32;
        } else {
            mask |= 0xFFFFFFFF00000000ull;
        }
        if ((mask & 0xFFFFFFFFu) == 0) { cw(dev, off, 4, orig); if (is64) i++; continue; }
        uint64_t size = ~mask + 1;
        cursor = (cursor + size - 1) & ~(size - 1);
        if (!is64 && cursor + size > 0x100000000ull) {
            snprintf(err, errlen, "pci: no room below 4 GiB for 32-bit BAR%u", i);
            return -1;
        }
        cw(dev, off, 4, (uint32_t)cursor | (orig & 0xF));
        if (is64) cw(dev, off + 4, 4, (uint32_t)(cursor >> 32));
        p->bar[i].present = true;
        p->bar[i].mem = true;
        p->bar[i].is64 = is64;
        p->bar[i].gpa = cursor;
        p->bar[i].len = size;
        cursor += size;
        if (is64) i++;
    }
    cw(dev, 4, 2, (cmd | PCI_ENABLE_MEMORY_SPACE | PCI_ENABLE_BUS_MASTER) & ~PCI_ENABLE_IO_SPACE);

    /* capability list: MSI-X and the virtio vendor capabilities (for MMIO accounting) */
    if (cr(dev, 6, 2) & PCI_STATUS_CAPABILITIES_LIST) {
        unsigned ptr = cr(dev, 0x34, 1) & 0xFC, guard = 0;
        while (ptr >= 0x40 && ptr < 0x100 && guard++ < 48) {
            unsigned capid = cr(dev, ptr, 1);
            if (capid == PCI_CAPABILITY_ID_MSIX) {
                p->msix_cap = ptr;
                p->msix_table_size = (cr(dev, ptr + 2, 2) & 0x7FF) + 1;
                uint32_t t = cr(dev, ptr + 4, 4);
                p->msix_table_bar = t & 7;
                p->msix_table_off = t & ~7u;
            } else if (capid == PCI_CAPABILITY_ID_VENDOR_SPECIFIC) {
                unsigned type = cr(dev, ptr + 3, 1);
                if (type >= 1 && type <= 5 && !p->vreg[type].present) {
                    p->vreg[type].present = true;
                    p->vreg[type].bar = cr(dev, ptr + 4, 1);
                    p->vreg[type].off = cr(dev, ptr + 8, 4);
                    p->vreg[type].len = cr(dev, ptr + 12, 4);
                }
            }
            ptr = cr(dev, ptr + 1, 1) & 0xFC;
        }
    }
    for (unsigned o = 0; o < 256; o += 4) {
        uint32_t v = cr(dev, o, 4);
        memcpy(p->cfg + o, &v, 4);
    }
    return 0;
}

int sim_pci_enable_msix(sim_dev *dev, struct sim_pci *p, unsigned nmsg, uint64_t target)
{
    if (!p->msix_cap || !p->bar[p->msix_table_bar].present) return -1;
    if (nmsg == 0 || nmsg > p->msix_table_size) nmsg = p->msix_table_size;
    if (nmsg > 64) nmsg = 64;
    uint64_t tbl = p->bar[p->msix_table_bar].gpa + p->msix_table_off;
    /* function mask while programming, as the OS does */
    uint16_t mc = (uint16_t)cr(dev, p->msix_cap + 2, 2);
    cw(dev, p->msix_cap + 2, 2, mc | 0x4000);
    for (unsigned i = 0; i < p->msix_table_size; i++) {
        uint64_t e = tbl + 16ull * i;
        if (i < nmsg) {
            uint64_t addr = target + SIM_MSI_STRIDE * i;
            dev->ops->mmio_write(dev, e + 0, 4, (uint32_t)addr);
            dev->ops->mmio_write(dev, e + 4, 4, (uint32_t)(addr >> 32));
            dev->ops->mmio_write(dev, e + 8, 4, SIM_MSI_DATA(i));
            dev->ops->mmio_write(dev, e + 12, 4, 0);
        } else {
            dev->ops->mmio_write(dev, e + 12, 4, 1);   /* masked: not granted */
        }
    }
    cw(dev, p->msix_cap + 2, 2, (mc | 0x8000) & ~0x4000);
    p->msix_enabled = true;
    p->nmsg = nmsg;
    p->msi_target_gpa = target;
    uint32_t v = cr(dev, p->msix_cap, 4);
    memcpy(p->cfg + p->msix_cap, &v, 4);
    return 0;
}

void sim_pci_disable_msix(sim_dev *dev, struct sim_pci *p)
{
    if (!p->msix_cap) return;
    uint16_t mc = (uint16_t)cr(dev, p->msix_cap + 2, 2);
    cw(dev, p->msix_cap + 2, 2, mc & ~0xC000);
    p->msix_enabled = false;
    p->nmsg = 0;
    uint32_t v = cr(dev, p->msix_cap, 4);
    memcpy(p->cfg + p->msix_cap, &v, 4);
}

int sim_pci_region_kind(const struct sim_pci *p, unsigned bar, uint64_t off)
{
    for (int t = 1; t <= 5; t++)
        if (p->vreg[t].present && p->vreg[t].bar == bar && off >= p->vreg[t].off &&
            off < (uint64_t)p->vreg[t].off + p->vreg[t].len)
            return t;
    return 0;
}
