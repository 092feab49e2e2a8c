// Behavioural model of the Lattice ECP5 DP16KD block RAM, for simulation only.
//
// Only the subset that siov instantiates (rtl/ecp5.py) is modelled: x18 data
// width on both ports (word address AD[13:4], AD[1:0] enable the 9-bit
// halves of a write), REGMODE NOREG or OUTREG, WRITEMODE NORMAL,
// WRITETHROUGH or READBEFOREWRITE, CE and OCE. Chip selects, resets and
// initial contents are not modelled: the instances tie CS and RST low and
// never rely on initial contents. Behaviour follows Lattice TN1264 (ECP5 and
// ECP5-5G Memory Usage Guide). Any other parameter value stops the simulation,
// so a wrong instance cannot pass silently.
/* verilator lint_off UNUSEDPARAM */
/* verilator lint_off UNUSEDSIGNAL */
module DP16KD #(
    parameter integer DATA_WIDTH_A = 18,
    parameter integer DATA_WIDTH_B = 18,
    parameter REGMODE_A = "NOREG",
    parameter REGMODE_B = "NOREG",
    parameter RESETMODE = "SYNC",
    parameter ASYNC_RESET_RELEASE = "SYNC",
    parameter CSDECODE_A = "0b000",
    parameter CSDECODE_B = "0b000",
    parameter WRITEMODE_A = "NORMAL",
    parameter WRITEMODE_B = "NORMAL",
    parameter GSR = "DISABLED"
) (
    input DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9,
    input DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0,
    input ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0,
    input CEA, OCEA, CLKA, WEA, RSTA, CSA2, CSA1, CSA0,
    output DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9,
    output DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0,
    input DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9,
    input DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0,
    input ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0,
    input CEB, OCEB, CLKB, WEB, RSTB, CSB2, CSB1, CSB0,
    output DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9,
    output DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0
);
    reg [17:0] mem [0:1023];

    wire [17:0] dia = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9,
                       DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
    wire [17:0] dib = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9,
                       DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0};
    wire [13:0] ada = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0};
    wire [13:0] adb = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0};
    wire [9:0] wa = ada[13:4];
    wire [9:0] wb = adb[13:4];
    // The 9-bit halves a write updates.
    wire [17:0] bea = {{9{ada[1]}}, {9{ada[0]}}};
    wire [17:0] beb = {{9{adb[1]}}, {9{adb[0]}}};

    reg [17:0] la, lb;            // array output latches
    reg [17:0] qa, qb;            // output registers (OUTREG)

    initial begin
        if (DATA_WIDTH_A != 18 || DATA_WIDTH_B != 18) begin
            $display("DP16KD model: only DATA_WIDTH 18 is modelled"); $finish;
        end
        if ((REGMODE_A != "NOREG" && REGMODE_A != "OUTREG") || (REGMODE_B != "NOREG" && REGMODE_B != "OUTREG")) begin
            $display("DP16KD model: REGMODE must be NOREG or OUTREG"); $finish;
        end
        if (CSDECODE_A != "0b000" || CSDECODE_B != "0b000") begin
            $display("DP16KD model: only CSDECODE 0b000 is modelled"); $finish;
        end
    end

    // One always block for both ports (one clock in siov): a write is the
    // array's state for the next edge; each port's output follows WRITEMODE.
    always @(posedge CLKA) begin
        if (CEA) begin
            if (WEA) begin
                mem[wa] <= (mem[wa] & ~bea) | (dia & bea);
                if (WRITEMODE_A == "READBEFOREWRITE") la <= mem[wa];
                else if (WRITEMODE_A == "WRITETHROUGH") la <= (mem[wa] & ~bea) | (dia & bea);
            end else begin
                la <= mem[wa];
            end
            if (OCEA) qa <= la;
        end
        if (CEB) begin
            if (WEB) begin
                mem[wb] <= (mem[wb] & ~beb) | (dib & beb);
                if (WRITEMODE_B == "READBEFOREWRITE") lb <= mem[wb];
                else if (WRITEMODE_B == "WRITETHROUGH") lb <= (mem[wb] & ~beb) | (dib & beb);
            end else begin
                lb <= mem[wb];
            end
            if (OCEB) qb <= lb;
        end
    end

    wire [17:0] doa = (REGMODE_A == "OUTREG") ? qa : la;
    wire [17:0] dob = (REGMODE_B == "OUTREG") ? qb : lb;
    assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9,
            DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} = doa;
    assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9,
            DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0} = dob;
endmodule
/* verilator lint_on UNUSEDSIGNAL */
/* verilator lint_on UNUSEDPARAM */
