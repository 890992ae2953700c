from socket import *

ser = socket(AF_INET, SOCK_STREAM)
ser.bind(("192.168.61.114", 8888))
ser.listen(5)

while True:
    new, addr = ser.accept()
    while True:
        msg = new.recv(1024)
        if not msg:
            break
        print(msg.decode("utf-8"))
        str1 = "8月1日，安理会轮值主"
        data_len = len(str1.encode("utf-8"))
        # 服务器第一次响应客户端（发送的是长度）
        new.send(str(data_len).encode("utf-8"))
        data = new.recv(1024).decode("utf-8")
        if data == "recv_ready":
            new.sendall(str1.encode("utf-8"))

    new.close()
